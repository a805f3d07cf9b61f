// A member the fault scenarios make misbehave: a small HTTP/1.1 server on
// 127.0.0.1 (not a webnode) that the test registers in ZooKeeper itself, as
// any serverset member may be, over a session the test keeps alive whatever
// the server does. Every answer carries X-Served-By: <id>; GET /health is
// its health check; GET /tunnel with Upgrade is answered 101 and echoes
// every byte after it (a WebSocket tunnel's stand-in).
// Threading: a thread accepting and one per connection; SetMode from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "loopback_server.h"

namespace webtier::zk { class Session; }

namespace webtier::faults {

class ForeignMember {
 public:
  enum class Mode {
    kNormal,       // 200 to everything
    kAnswer503,    // /health 200, everything else 503
    kAnswer500,    // /health 200, everything else 500
    kHealthFails,  // /health 503, everything else 200
    kHang,         // nothing answered (requests held until the mode changes)
  };

  // Listens, then registers under `zk_path` (ephemeral sequential member_)
  // through its own session to `zk_connect`. Throws when either fails.
  ForeignMember(std::string id, const std::string& zk_connect, const std::string& zk_path);
  ~ForeignMember();
  ForeignMember(const ForeignMember&) = delete;
  ForeignMember& operator=(const ForeignMember&) = delete;

  void SetMode(Mode mode) { mode_.store(mode); }
  const std::string& id() const { return id_; }
  uint16_t port() const { return server_.port(); }
  // Requests other than /health that reached it.
  uint64_t requests() const { return requests_.load(); }

 private:
  void Serve(int fd);
  // The status for `path` in the current mode; 0: hold the request.
  int StatusFor(const std::string& path) const;

  std::string id_;
  std::atomic<Mode> mode_{Mode::kNormal};
  std::atomic<uint64_t> requests_{0};
  LoopbackServer server_;  // after what its threads use
  std::unique_ptr<zk::Session> session_;
};

}  // namespace webtier::faults
