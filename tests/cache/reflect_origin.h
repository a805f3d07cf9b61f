// An upstream for hostile-request tests that answers every request with a
// reflection of what reached it: method, target, every header line as sent,
// and the body, as text (plain sockets, so nothing is normalised on the way),
// with `Cache-Control: public, max-age=60`. Also a bare "victim" listener
// that only counts the connections it is offered.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace webtier::cache::testing {

class ReflectOrigin {
 public:
  ReflectOrigin();
  ~ReflectOrigin();
  ReflectOrigin(const ReflectOrigin&) = delete;
  ReflectOrigin& operator=(const ReflectOrigin&) = delete;

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  uint16_t port() const { return port_; }
  int requests() const { return requests_.load(); }
  // Every request line seen ("GET /x HTTP/1.1"), in order.
  std::vector<std::string> request_lines() const;

 private:
  void Serve(int fd);
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  mutable std::mutex mu_;
  std::vector<std::string> lines_;
  std::vector<std::thread> threads_;  // guarded by mu_
  std::thread acceptor_;
};

// Accepts and counts connections, answers nothing.
class Victim {
 public:
  Victim();
  ~Victim();
  uint16_t port() const { return port_; }
  int connections() const { return connections_.load(); }

 private:
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::thread acceptor_;
};

}  // namespace webtier::cache::testing
