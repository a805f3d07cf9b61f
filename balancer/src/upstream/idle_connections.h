// One worker's keep-alive connections to members, idle between requests.
// Not thread-safe: owned by a worker and used only from its thread. Must be
// destroyed before the io_context its sockets belong to.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <unordered_map>
#include <vector>

#include "engine/connection.h"

namespace webtier::balancer {

class IdleConnections {
 public:
  // `draining` (shared by all workers) stops connections from being kept.
  IdleConnections(const Config& config, const std::atomic<bool>& draining);

  // A usable idle connection to `member`, or null (then open a new one).
  // Idle connections stay registered for reading, the way HAProxy keeps
  // them polled: a stray byte or an EOF from the member closes the
  // connection the moment the event loop sees it, so those bytes never
  // become another client's answer, and taking one costs no syscall.
  std::unique_ptr<UpstreamConnection> TakeIdle(Member* member);
  // Keeps `up` for another request (the caller vouches that its last
  // response was framed cleanly and read whole, nothing left over) unless its member left, the worker
  // drains, or --max-idle-upstream-per-member are kept already.
  void ReturnIdle(std::unique_ptr<UpstreamConnection> up);
  // Closes the connections idle for --idle-timeout-ms, to removed members,
  // or that went bad while idle.
  void Sweep();

 private:
  // Starts the read that watches `up` while it is idle; false when the
  // member already sent something or closed (then it is not kept).
  static bool Watch(UpstreamConnection& up);

  const std::chrono::milliseconds idle_timeout_;
  const int max_per_member_;
  const std::atomic<bool>& draining_;
  std::unordered_map<Member*, std::vector<std::unique_ptr<UpstreamConnection>>> idle_;
};

}  // namespace webtier::balancer
