// A ZooKeeper client session that survives its server: it owns the C client
// handle, rides out connection loss (same session, watches kept) and replaces
// the handle after session expiry, telling its listeners so they can re-create
// their ephemerals and re-arm their watches. The real zk::Client (zk_client.h
// holds the threading contract it keeps).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "webtier/common/status.h"
#include "webtier/common/zk_client.h"

namespace webtier::zk {

// Translates a ZooKeeper C client return code into the project's Status.
// `what` names the operation and path, e.g. "create /webtier/nodes/member_".
Status FromZkCode(int rc, std::string_view what);

class Session : public Client {
 public:
  struct Options {
    std::string connect = "127.0.0.1:2181";  // comma-separated host:port list
    int session_timeout_ms = 6000;           // asked for; the server may clamp it
    std::string component = "zk";            // log component name
    // Digest credential "user:password", added to every handle (the first and
    // each one replacing an expired session) before any operation. Set: every
    // znode this session creates gets ALL for its creator's identity, READ for
    // anyone, and ALL for each of `admin_digests`. Empty: znodes are created
    // open to anyone (ZOO_OPEN_ACL_UNSAFE).
    std::string digest_auth;
    // Extra digest identities ("user:base64(sha1(user:password))") granted ALL
    // on every created znode; used only with `digest_auth`.
    std::vector<std::string> admin_digests;
    // With `digest_auth`: on each new session, this path and its parents are
    // checked, and each existing one that anyone may change (created earlier
    // without ACL) is logged once per process. Nothing is changed.
    std::string audit_path;
  };

  explicit Session(Options options);
  // Stops the event thread and closes the handle (ephemerals go at once).
  ~Session() override;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Listeners run on the session's event thread (never on the ZooKeeper
  // completion thread). Add listeners before Start().
  void AddListener(Listener listener) override;  // zk::Client

  // Starts the event thread and the first handle. Does not wait for a
  // connection: a server that is down at start-up is not an error; the client
  // keeps trying. Fails only on a malformed connect string.
  Status Start();

  // Closes the handle now (ephemerals are deleted by the server at once).
  // Safe to call twice; the destructor calls it.
  void Close();

  // zk::Client
  bool connected() const override;
  int64_t session_id() const override;
  std::string ConnectedServerIp() const override;
  int negotiated_timeout_ms() const override;

  // Synchronous operations (zk::Client). They may block up to about the
  // session timeout.
  Status Create(const std::string& path, std::string_view data, int flags, std::string* created_path) override;
  Status Delete(const std::string& path, int version = -1) override;
  Status Get(const std::string& path, std::string* data, NodeStat* stat = nullptr, Watch watch = {}) override;
  Status Set(const std::string& path, std::string_view data, int version = -1) override;
  Status Exists(const std::string& path, NodeStat* stat = nullptr, Watch watch = {}) override;
  Status GetChildren(const std::string& path, std::vector<std::string>* children, Watch watch = {}) override;
  // Pipelined: every read is sent before the first answer is awaited.
  std::vector<GetResult> GetMany(const std::vector<std::string>& paths, std::vector<Watch> watches = {}) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace webtier::zk
