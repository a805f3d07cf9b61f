// A small HTTP backend for the balancer tests and the benchmark. Every
// response carries X-Served-By: <id>.
//   /sleep/<ms>   answers after ms milliseconds
//   /chunked      a chunked response in three pieces ("alpha-beta-gamma")
//   /close        a close-delimited response (no Content-Length)
//   /big/<n>      n bytes of 'x'
//   /status/<n>   that status code
//   anything else JSON echo: {"server","method","target","headers":{...},"body_size"}
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace webtier::testing {

// Serves on 127.0.0.1:`port` (0 = any) from `threads` threads until destroyed.
class EchoBackend {
 public:
  explicit EchoBackend(std::string id, uint16_t port = 0, int threads = 1);
  ~EchoBackend();
  EchoBackend(const EchoBackend&) = delete;
  EchoBackend& operator=(const EchoBackend&) = delete;
  uint16_t port() const;
  const std::string& id() const;
  // Blocks the calling thread serving (for the standalone program).
  void RunForever();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Sends `raw` on a fresh connection to 127.0.0.1:`port` and returns what comes
// back until the server closes or `timeout` passes. `pause_after` bytes in,
// waits `pause` before sending the rest (slow clients).
std::string RawExchange(uint16_t port, const std::string& raw, std::chrono::milliseconds timeout,
                        size_t pause_after = std::string::npos,
                        std::chrono::milliseconds pause = std::chrono::milliseconds(0));

}  // namespace webtier::testing
