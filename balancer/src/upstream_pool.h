// One worker's keep-alive connections to members, idle between requests.
// Not thread-safe: owned by a worker and used only from its thread. Must be
// destroyed before the io_context its sockets belong to.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <unordered_map>
#include <vector>

#include "connection.h"

namespace webtier::balancer {

class UpstreamPool {
 public:
  // `draining` (shared by all workers) stops connections from being kept.
  UpstreamPool(const Config& config, const std::atomic<bool>& draining);

  // A usable idle connection to `host`, or null (then open a new one).
  // Every one is checked before reuse (StillOpen, one non-blocking peek): a
  // connection on which the member sent an EOF or stray bytes meanwhile is
  // closed, so those bytes never become another client's answer.
  std::unique_ptr<UpstreamConnection> TakeIdle(Host* host);
  // Keeps `up` for another request (the caller vouches that its last
  // response was framed cleanly and read whole, nothing left over) unless its member left, the worker
  // drains, or --max-idle-upstream-per-member are kept already.
  void ReturnIdle(std::unique_ptr<UpstreamConnection> up);
  // Closes the connections idle for --idle-timeout-ms or to removed members.
  void Sweep();

 private:
  const std::chrono::milliseconds idle_timeout_;
  const int max_per_member_;
  const std::atomic<bool>& draining_;
  std::unordered_map<Host*, std::vector<std::unique_ptr<UpstreamConnection>>> idle_;
};

}  // namespace webtier::balancer
