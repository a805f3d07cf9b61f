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
#include <mutex>
#include <thread>
#include <vector>

namespace webtier::faults {

class DelayRelay {
 public:
  explicit DelayRelay(std::chrono::milliseconds one_way);
  ~DelayRelay();
  DelayRelay(const DelayRelay&) = delete;
  DelayRelay& operator=(const DelayRelay&) = delete;

  uint16_t port() const { return port_; }
  // Where connections go (127.0.0.1:port); until set, they are closed at once.
  void SetTarget(uint16_t port) { target_.store(port); }

 private:
  void Accept();
  void Relay(int client);
  // Copies `from` to `to` with the delay until EOF, an error or the stop.
  void Pump(int from, int to);

  const std::chrono::milliseconds one_way_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<uint16_t> target_{0};
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::vector<std::thread> threads_;  // guarded by mu_
  std::thread acceptor_;
};

}  // namespace webtier::faults
