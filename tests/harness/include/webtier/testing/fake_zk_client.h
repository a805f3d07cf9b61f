// zk::FakeClient: an in-memory ZooKeeper behind the zk::Client seam, for unit
// tests of the code that registers and follows members. One client, one
// session at a time, plus test controls that play the network and the other
// clients (connection loss, reconnection, expiry, a create that returns
// connection loss after it succeeded, another client deleting or rewriting a
// znode).
//
// Threading, as zk::Client promises: listeners and watches run on the fake's
// own event thread, one at a time, and may call the operations. Operations
// and controls are thread-safe and apply to the tree at once; the events they
// cause are queued. WaitIdleForTest() returns once the queue is drained.
// Watch events triggered while disconnected are delivered after kReconnected
// (as the real client re-sends its watches); an expiry drops them.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "webtier/common/mutex.h"
#include "webtier/common/zk_client.h"

namespace webtier::zk {

class FakeClient : public Client {
 public:
  // Starts the event thread; not connected until StartSession().
  FakeClient();
  ~FakeClient() override;
  FakeClient(const FakeClient&) = delete;
  FakeClient& operator=(const FakeClient&) = delete;

  // zk::Client
  void AddListener(Listener listener) override WEBTIER_EXCLUDES(mu_);
  bool connected() const override WEBTIER_EXCLUDES(mu_);
  int64_t session_id() const override WEBTIER_EXCLUDES(mu_);
  std::string ConnectedServerIp() const override WEBTIER_EXCLUDES(mu_);
  int negotiated_timeout_ms() const override;
  Status Create(const std::string& path, std::string_view data, int flags, std::string* created_path) override
      WEBTIER_EXCLUDES(mu_);
  Status Delete(const std::string& path, int version = -1) override WEBTIER_EXCLUDES(mu_);
  Status Get(const std::string& path, std::string* data, NodeStat* stat = nullptr, Watch watch = {}) override
      WEBTIER_EXCLUDES(mu_);
  Status Set(const std::string& path, std::string_view data, int version = -1) override WEBTIER_EXCLUDES(mu_);
  Status Exists(const std::string& path, NodeStat* stat = nullptr, Watch watch = {}) override WEBTIER_EXCLUDES(mu_);
  Status GetChildren(const std::string& path, std::vector<std::string>* children, Watch watch = {}) override
      WEBTIER_EXCLUDES(mu_);

  // --- Test controls -------------------------------------------------------
  // Connects with a new session id: kSessionStarted.
  void StartSession() WEBTIER_EXCLUDES(mu_);
  // The connection drops, the session lives on: kDisconnected; operations
  // fail with kConnectionLoss until Reconnect().
  void DropConnection() WEBTIER_EXCLUDES(mu_);
  // Connected again with the same session: kReconnected, then the watches
  // triggered meanwhile.
  void Reconnect() WEBTIER_EXCLUDES(mu_);
  // The server expires the session: its ephemerals are deleted (firing other
  // clients' watches only: ours are dropped first), kExpired; then, when
  // `start_new`, StartSession().
  void ExpireSession(bool start_new = true) WEBTIER_EXCLUDES(mu_);
  // Runs `hook(op, path)` at the start of every operation ("create", "get",
  // "get_children", ...), on the calling thread with no fake lock held: a
  // test plays another client's move between two of ours (e.g. a delete
  // between a listing and a read).
  using OperationHook = std::function<void(std::string_view op, const std::string& path)>;
  void SetOperationHookForTest(OperationHook hook) WEBTIER_EXCLUDES(mu_);
  // The next Create is applied but answers kConnectionLoss.
  void FailNextCreateAfterApplyingForTest() WEBTIER_EXCLUDES(mu_);
  // Operations of another client (session kOtherSession), connected or not.
  static constexpr int64_t kOtherSession = 0x0ddba11;
  Status CreateAsOther(const std::string& path, std::string_view data, int flags = kPersistent,
                       std::string* created_path = nullptr) WEBTIER_EXCLUDES(mu_);
  Status SetAsOther(const std::string& path, std::string_view data) WEBTIER_EXCLUDES(mu_);
  Status DeleteAsOther(const std::string& path) WEBTIER_EXCLUDES(mu_);
  // The tree as it is now, whatever the connection state.
  std::vector<std::string> ChildrenForTest(const std::string& path) const WEBTIER_EXCLUDES(mu_);
  std::optional<std::string> DataForTest(const std::string& path) const WEBTIER_EXCLUDES(mu_);
  std::optional<NodeStat> StatForTest(const std::string& path) const WEBTIER_EXCLUDES(mu_);
  // Blocks until every queued listener call and watch has run.
  void WaitIdleForTest() WEBTIER_EXCLUDES(mu_);
  // Operations answered so far (each GetMany path counts once).
  int64_t operations_for_test() const WEBTIER_EXCLUDES(mu_);

 private:
  struct Node {
    std::string data;
    int32_t version = 0;
    int64_t ephemeral_owner = 0;
    int32_t next_sequence = 0;
  };
  using WatchTable = std::map<std::string, std::vector<Watch>>;

  // An operation starts: RunHook() with no lock held, then, with the lock,
  // BeginLocked() counts it; kConnectionLoss when disconnected.
  void RunHook(const char* op, const std::string& path) WEBTIER_EXCLUDES(mu_);
  Status BeginLocked(const char* op, const std::string& path) WEBTIER_REQUIRES(mu_);
  Status CreateLocked(const std::string& path, std::string_view data, int flags, int64_t owner,
                      std::string* created_path) WEBTIER_REQUIRES(mu_);
  Status DeleteLocked(const std::string& path, int version) WEBTIER_REQUIRES(mu_);
  Status SetLocked(const std::string& path, std::string_view data, int version) WEBTIER_REQUIRES(mu_);
  std::vector<std::string> ChildrenLocked(const std::string& path) const WEBTIER_REQUIRES(mu_);
  std::optional<NodeStat> StatForTestLocked(const std::string& path) const WEBTIER_REQUIRES(mu_);
  // Moves the watches on `path` in `table` (one of the tables below) to the
  // event queue (or aside while disconnected).
  void TriggerLocked(WatchTable& table, const std::string& path) WEBTIER_REQUIRES(mu_);
  void PostLocked(std::function<void()> fn) WEBTIER_REQUIRES(mu_);
  void NotifyLocked(Event event) WEBTIER_REQUIRES(mu_);
  void RunEvents() WEBTIER_EXCLUDES(mu_);

  mutable Mutex mu_;
  CondVar cv_;
  std::map<std::string, Node> tree_ WEBTIER_GUARDED_BY(mu_);
  WatchTable data_watches_ WEBTIER_GUARDED_BY(mu_);
  WatchTable child_watches_ WEBTIER_GUARDED_BY(mu_);
  std::vector<Watch> deferred_ WEBTIER_GUARDED_BY(mu_);  // triggered while disconnected
  std::vector<Listener> listeners_ WEBTIER_GUARDED_BY(mu_);
  bool connected_ WEBTIER_GUARDED_BY(mu_) = false;
  int64_t session_ WEBTIER_GUARDED_BY(mu_) = 0;
  int64_t next_session_ WEBTIER_GUARDED_BY(mu_) = 0x1000;
  bool fail_next_create_ WEBTIER_GUARDED_BY(mu_) = false;
  OperationHook hook_ WEBTIER_GUARDED_BY(mu_);
  int64_t operations_ WEBTIER_GUARDED_BY(mu_) = 0;

  std::deque<std::function<void()>> queue_ WEBTIER_GUARDED_BY(mu_);
  bool running_ WEBTIER_GUARDED_BY(mu_) = false;  // an event is being handled
  bool stopping_ WEBTIER_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace webtier::zk
