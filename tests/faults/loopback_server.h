// A TCP server on 127.0.0.1 for the scenarios' hand-made members: accepts on
// its own thread and hands each connection to `serve` on a thread of its
// own; the destructor stops accepting, sets stopping() and joins every
// thread (`serve` must return soon after stopping() turns true, e.g. by
// reading with a receive timeout). `serve` owns and closes the descriptor.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace webtier::faults {

class LoopbackServer {
 public:
  explicit LoopbackServer(std::function<void(int fd)> serve);
  ~LoopbackServer();
  LoopbackServer(const LoopbackServer&) = delete;
  LoopbackServer& operator=(const LoopbackServer&) = delete;

  uint16_t port() const { return port_; }
  bool stopping() const { return stopping_.load(); }

 private:
  void Accept();

  std::function<void(int)> serve_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::vector<std::thread> threads_;  // guarded by mu_
  std::thread acceptor_;
};

// Makes each recv on `fd` give up after 100 ms, so a serving loop can
// notice LoopbackServer::stopping().
void WakeEvery100ms(int fd);

}  // namespace webtier::faults
