// A ZooKeeper client session that survives its server: it owns the C client
// handle, rides out connection loss (same session, watches kept) and replaces
// the handle after session expiry, telling its listeners so they can re-create
// their ephemerals and re-arm their watches.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "webtier/common/status.h"

namespace webtier::zk {

// Flags for Create(); values match ZOO_EPHEMERAL / ZOO_SEQUENCE.
inline constexpr int kPersistent = 0;
inline constexpr int kEphemeral = 1;
inline constexpr int kSequence = 2;

// What ZooKeeper says about a znode (subset of struct Stat).
struct NodeStat {
  int32_t version = 0;
  int64_t ephemeral_owner = 0;  // session id owning an ephemeral, else 0
  int32_t num_children = 0;
};

// Translates a ZooKeeper C client return code into the project's Status.
// `what` names the operation and path, e.g. "create /webtier/nodes/member_".
Status FromZkCode(int rc, std::string_view what);

class Session {
 public:
  struct Options {
    std::string connect = "127.0.0.1:2181";  // comma-separated host:port list
    int session_timeout_ms = 6000;           // asked for; the server may clamp it
    std::string component = "zk";            // log component name
  };

  enum class Event {
    kSessionStarted,  // connected with a NEW session (first time, or after expiry)
    kReconnected,     // connected again with the SAME session: ephemerals and watches kept
    kDisconnected,    // connection lost; the session may still be alive on the server
    kExpired,         // session gone: its ephemerals are deleted and its watches dropped
  };
  using Listener = std::function<void(Event)>;
  // A one-shot watch callback. Fired once, on the session's event thread, when
  // the watched znode (or its child list) changes or is deleted. Never fired
  // for a session expiry: listeners get kExpired and must re-arm instead.
  using Watch = std::function<void()>;

  explicit Session(Options options);
  // Stops the event thread and closes the handle (ephemerals go at once).
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Registers a listener. Listeners run on the session's event thread (never
  // on the ZooKeeper completion thread), one at a time, so they may call the
  // synchronous operations below. Add listeners before Start().
  void AddListener(Listener listener);

  // Starts the event thread and the first handle. Does not wait for a
  // connection: a server that is down at start-up is not an error; the client
  // keeps trying. Fails only on a malformed connect string.
  Status Start();

  // Closes the handle now (ephemerals are deleted by the server at once).
  // Safe to call twice; the destructor calls it.
  void Close();

  bool connected() const;
  // Current session id (0 before the first connection).
  int64_t session_id() const;
  // IP address of the ZooKeeper server currently connected to, or "".
  std::string ConnectedServerIp() const;
  // The negotiated session timeout in ms (0 before connecting).
  int negotiated_timeout_ms() const;

  // Synchronous operations. Thread-safe; may block up to about the session
  // timeout. When not connected they fail at once with kConnectionLoss.
  // Note: a Create that returns kConnectionLoss may have succeeded.
  Status Create(const std::string& path, std::string_view data, int flags, std::string* created_path);
  Status Delete(const std::string& path, int version = -1);
  Status Get(const std::string& path, std::string* data, NodeStat* stat = nullptr, Watch watch = {});
  Status Set(const std::string& path, std::string_view data, int version = -1);
  Status Exists(const std::string& path, NodeStat* stat = nullptr, Watch watch = {});
  Status GetChildren(const std::string& path, std::vector<std::string>* children, Watch watch = {});
  // Creates `path` and its missing parents as persistent znodes; existing ones are fine.
  Status EnsurePath(const std::string& path);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace webtier::zk
