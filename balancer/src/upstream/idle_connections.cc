// A worker's idle member connections (see idle_connections.h).
#include "upstream/idle_connections.h"

#include "engine/reactor_hints.h"

namespace webtier::balancer {

IdleConnections::IdleConnections(const Config& config, const std::atomic<bool>& draining)
    : idle_timeout_(config.idle_timeout_ms), max_per_member_(config.max_idle_upstream_per_member), draining_(draining) {}

std::unique_ptr<UpstreamConnection> IdleConnections::TakeIdle(Member* member) {
  auto it = idle_.find(member);
  if (it == idle_.end()) return nullptr;
  auto& list = it->second;
  const auto now = Clock::now();
  while (!list.empty()) {
    auto up = std::move(list.back());
    list.pop_back();
    if (!up->went_bad && now - up->idle_since < idle_timeout_) {
      // Ends the watch, with no syscall: its handler, whenever it runs,
      // finds the connection no longer pooled and leaves it alone.
      up->watch->pooled = nullptr;
      error_code ignored;
      up->stream.cancel(ignored);
      up->reused = true;
      return up;
    }
  }
  idle_.erase(it);
  return nullptr;
}

void IdleConnections::ReturnIdle(std::unique_ptr<UpstreamConnection> up) {
  if (up->member->removed() || draining_.load(std::memory_order_relaxed)) return;
  auto& list = idle_[up->member.get()];
  if (static_cast<int>(list.size()) >= max_per_member_) return;
  if (!Watch(*up)) return;
  up->idle_since = Clock::now();
  list.push_back(std::move(up));
}

bool IdleConnections::Watch(UpstreamConnection& up) {
  if (!up.watch) up.watch = std::make_shared<UpstreamConnection::IdleWatch>();
  error_code ec;
  if (!ReceiveQueueKnownEmpty(up.stream)) {
    // The last read filled its buffer (or the reactor cannot tell): one
    // look now, as every reuse used to pay.
    up.stream.read_some(asio::buffer(&up.watch->byte, 1), ec);
    if (ec != asio::error::would_block) return false;  // a stray byte, EOF or an error
    MarkReceiveQueueEmpty(up.stream);
  }
  up.went_bad = false;
  up.watch->pooled = &up;
  // Queued without a syscall when the queue is known empty. The handler
  // acts only on a connection still pooled: taking one from the pool, or
  // destroying it, clears `pooled` first, so a completion that was already
  // on its way (or an abort) touches nothing.
  up.stream.async_read_some(asio::buffer(&up.watch->byte, 1), [watch = up.watch](error_code, size_t) {
    UpstreamConnection* conn = watch->pooled;
    if (conn == nullptr) return;
    watch->pooled = nullptr;
    conn->went_bad = true;
    error_code ignored;
    conn->stream.close(ignored);
  });
  return true;
}

void IdleConnections::Sweep() {
  const auto now = Clock::now();
  for (auto it = idle_.begin(); it != idle_.end();) {
    auto& list = it->second;
    std::erase_if(list, [&](const std::unique_ptr<UpstreamConnection>& up) {
      return up->went_bad || up->member->removed() || now - up->idle_since >= idle_timeout_;
    });
    if (list.empty()) it = idle_.erase(it);
    else ++it;
  }
}

}  // namespace webtier::balancer
