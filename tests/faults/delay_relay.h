// A TCP relay on 127.0.0.1 that delays every byte by a fixed time in each
// direction: a member "in another zone" for the zone scenario, where the
// kernel has no netem to put the delay on a link. Each chunk read is sent on
// once `one_way` has passed since it arrived (a connection's chunks keep
// their order; small request/response exchanges see one_way each way).
// Threading: one accepting thread, two per relayed connection; SetTarget
// from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "loopback_server.h"

namespace webtier::faults {

class DelayRelay {
 public:
  explicit DelayRelay(std::chrono::milliseconds one_way);
  ~DelayRelay();
  DelayRelay(const DelayRelay&) = delete;
  DelayRelay& operator=(const DelayRelay&) = delete;

  uint16_t port() const { return server_.port(); }
  // Where connections go (127.0.0.1:port); until set, they are closed at once.
  void SetTarget(uint16_t port) { target_.store(port); }

 private:
  void Relay(int client);
  // Copies `from` to `to` with the delay until EOF, an error or the stop.
  void Pump(int from, int to);

  const std::chrono::milliseconds one_way_;
  std::atomic<uint16_t> target_{0};
  LoopbackServer server_;  // last: its threads use the members above
};

}  // namespace webtier::faults
