// The ZooKeeper seam: what membership code (webnode::MemberRegistration,
// balancer::MemberRegistry) needs from a ZooKeeper session. zk::Session is
// the real one (zk_session.h); tests use zk::FakeClient (tests/harness).
//
// Contract every implementation keeps (the real client's semantics):
// - Listeners run on the client's event thread, one at a time, never on a
//   thread that holds a client lock, so they may call the synchronous
//   operations. Add them before the client starts.
// - Watches are one-shot and fire on that same event thread when the watched
//   znode (or its child list) changes or is deleted. A session expiry drops
//   every watch without firing it: listeners get kExpired and must re-arm.
// - The operations are thread-safe and synchronous. When not connected they
//   fail at once with kConnectionLoss. A Create that returns kConnectionLoss
//   may have succeeded.
#pragma once

#include <cstdint>
#include <functional>
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

// One answer of GetMany().
struct GetResult {
  Status status;
  std::string data;
  NodeStat stat;
};

class Client {
 public:
  enum class Event {
    kSessionStarted,  // connected with a NEW session (first time, or after expiry)
    kReconnected,     // connected again with the SAME session: ephemerals and watches kept
    kDisconnected,    // connection lost; the session may still be alive on the server
    kExpired,         // session gone: its ephemerals are deleted and its watches dropped
  };
  using Listener = std::function<void(Event)>;
  // A one-shot watch callback (see the contract above).
  using Watch = std::function<void()>;

  virtual ~Client() = default;

  // Registers a listener; call before the client starts.
  virtual void AddListener(Listener listener) = 0;

  virtual bool connected() const = 0;
  // Current session id (0 before the first connection).
  virtual int64_t session_id() const = 0;
  // IP address of the ZooKeeper server currently connected to, or "".
  virtual std::string ConnectedServerIp() const = 0;
  // The negotiated session timeout in ms (0 before connecting).
  virtual int negotiated_timeout_ms() const = 0;

  virtual Status Create(const std::string& path, std::string_view data, int flags, std::string* created_path) = 0;
  virtual Status Delete(const std::string& path, int version = -1) = 0;
  virtual Status Get(const std::string& path, std::string* data, NodeStat* stat = nullptr, Watch watch = {}) = 0;
  virtual Status Set(const std::string& path, std::string_view data, int version = -1) = 0;
  virtual Status Exists(const std::string& path, NodeStat* stat = nullptr, Watch watch = {}) = 0;
  virtual Status GetChildren(const std::string& path, std::vector<std::string>* children, Watch watch = {}) = 0;
  // Creates `path` and its missing parents as persistent znodes; existing ones are fine.
  virtual Status EnsurePath(const std::string& path);

  // Reads many znodes; watches[i] (when set; `watches` may be shorter or
  // empty) is armed on paths[i] exactly as Get would arm it. Answers in the
  // order of `paths`. The default calls Get once per path; the real client
  // pipelines the reads on its connection.
  virtual std::vector<GetResult> GetMany(const std::vector<std::string>& paths, std::vector<Watch> watches = {});
};

}  // namespace webtier::zk
