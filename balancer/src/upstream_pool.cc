// A worker's idle member connections (see upstream_pool.h).
#include "upstream_pool.h"

namespace webtier::balancer {

UpstreamPool::UpstreamPool(const Config& config, const std::atomic<bool>& draining)
    : idle_timeout_(config.idle_timeout_ms), max_per_member_(config.max_idle_upstream_per_member), draining_(draining) {}

std::unique_ptr<UpstreamConnection> UpstreamPool::TakeIdle(Host* host) {
  auto it = idle_.find(host);
  if (it == idle_.end()) return nullptr;
  auto& list = it->second;
  const auto now = Clock::now();
  while (!list.empty()) {
    auto up = std::move(list.back());
    list.pop_back();
    // Checked every time, however briefly it was idle: bytes a member sent
    // after its answer (past a HEAD, a 204, a complete body) must not be
    // read as the next request's answer. One syscall per reuse.
    if (now - up->idle_since < idle_timeout_ && StillOpen(up->stream)) {
      up->reused = true;
      return up;
    }
  }
  idle_.erase(it);
  return nullptr;
}

void UpstreamPool::ReturnIdle(std::unique_ptr<UpstreamConnection> up) {
  if (up->host->removed() || draining_.load(std::memory_order_relaxed)) return;
  auto& list = idle_[up->host.get()];
  if (static_cast<int>(list.size()) >= max_per_member_) return;
  up->idle_since = Clock::now();
  list.push_back(std::move(up));
}

void UpstreamPool::Sweep() {
  const auto now = Clock::now();
  for (auto it = idle_.begin(); it != idle_.end();) {
    auto& list = it->second;
    std::erase_if(list, [&](const std::unique_ptr<UpstreamConnection>& up) {
      return up->host->removed() || now - up->idle_since >= idle_timeout_;
    });
    if (list.empty()) it = idle_.erase(it);
    else ++it;
  }
}

}  // namespace webtier::balancer
