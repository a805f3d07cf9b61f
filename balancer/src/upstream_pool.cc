// A worker's idle member connections (see upstream_pool.h).
#include "upstream_pool.h"

#include "reactor_hints.h"

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
    if (!up->went_bad && now - up->idle_since < idle_timeout_) {
      // Ends the watch (its handler runs later, aborted, and touches
      // nothing); no syscall.
      error_code ignored;
      up->stream.cancel(ignored);
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
  if (!Watch(*up)) return;
  up->idle_since = Clock::now();
  list.push_back(std::move(up));
}

bool UpstreamPool::Watch(UpstreamConnection& up) {
  error_code ec;
  if (!ReceiveQueueKnownEmpty(up.stream)) {
    // The last read filled its buffer (or the reactor cannot tell): one
    // look now, as every reuse used to pay.
    up.stream.read_some(asio::buffer(&up.idle_byte, 1), ec);
    if (ec != asio::error::would_block) return false;  // a stray byte, EOF or an error
    MarkReceiveQueueEmpty(up.stream);
  }
  up.went_bad = false;
  // Queued without a syscall (the queue is known empty). The handler runs
  // only after the reactor performed the read for an event, in the same
  // turn (the connection is pooled then: taking it cancels the read first),
  // or aborted after a cancel or close, when the connection may be gone.
  UpstreamConnection* conn = &up;
  up.stream.async_read_some(asio::buffer(&up.idle_byte, 1), [conn](error_code rec, size_t) {
    if (rec == asio::error::operation_aborted) return;
    conn->went_bad = true;
    error_code ignored;
    conn->stream.close(ignored);
  });
  return true;
}

void UpstreamPool::Sweep() {
  const auto now = Clock::now();
  for (auto it = idle_.begin(); it != idle_.end();) {
    auto& list = it->second;
    std::erase_if(list, [&](const std::unique_ptr<UpstreamConnection>& up) {
      return up->went_bad || up->host->removed() || now - up->idle_since >= idle_timeout_;
    });
    if (list.empty()) it = idle_.erase(it);
    else ++it;
  }
}

}  // namespace webtier::balancer
