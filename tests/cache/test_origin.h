// A programmable upstream HTTP server for --origin tests: canned responses per
// path, an optional delay, a failure switch, and per-path hit counts. Runs
// in-process on Pistache, bound to a free loopback port.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "webtier/cache/message.h"

namespace Pistache::Http {
class Endpoint;
}

namespace webtier::cache::testing {

// Thread-safe. Unknown paths answer 200 with "origin:<path>?<query>" and
// `Cache-Control: max-age=60`. SetFailing(true) makes every request answer 503.
class TestOrigin {
 public:
  struct Canned {
    Response response;
    int delay_ms = 0;
    std::string echo;          // a request header whose value is appended to the body ("" = none)
    bool conditional = false;  // If-None-Match equal to the canned ETag: 304 with the canned headers
  };

  TestOrigin();
  ~TestOrigin();

  void Set(const std::string& path, Canned canned);
  void SetFailing(bool failing);
  int Hits(const std::string& path) const;  // requests seen for `path`
  int TotalHits() const;
  // The headers of every request seen for `path`, in order (names as sent).
  std::vector<Headers> Requests(const std::string& path) const;
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  uint16_t port() const { return port_; }

  struct State;

 private:
  std::shared_ptr<State> state_;
  std::unique_ptr<Pistache::Http::Endpoint> endpoint_;
  uint16_t port_ = 0;
};

}  // namespace webtier::cache::testing
