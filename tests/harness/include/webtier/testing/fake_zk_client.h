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

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

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
  void AddListener(Listener listener) override;
  bool connected() const override;
  int64_t session_id() const override;
  std::string ConnectedServerIp() const override;
  int negotiated_timeout_ms() const override;
  Status Create(const std::string& path, std::string_view data, int flags, std::string* created_path) override;
  Status Delete(const std::string& path, int version = -1) override;
  Status Get(const std::string& path, std::string* data, NodeStat* stat = nullptr, Watch watch = {}) override;
  Status Set(const std::string& path, std::string_view data, int version = -1) override;
  Status Exists(const std::string& path, NodeStat* stat = nullptr, Watch watch = {}) override;
  Status GetChildren(const std::string& path, std::vector<std::string>* children, Watch watch = {}) override;

  // --- Test controls -------------------------------------------------------
  // Connects with a new session id: kSessionStarted.
  void StartSession();
  // The connection drops, the session lives on: kDisconnected; operations
  // fail with kConnectionLoss until Reconnect().
  void DropConnection();
  // Connected again with the same session: kReconnected, then the watches
  // triggered meanwhile.
  void Reconnect();
  // The server expires the session: its ephemerals are deleted (firing other
  // clients' watches only: ours are dropped first), kExpired; then, when
  // `start_new`, StartSession().
  void ExpireSession(bool start_new = true);
  // Runs `hook(op, path)` at the start of every operation ("create", "get",
  // "get_children", ...), on the calling thread with no fake lock held: a
  // test plays another client's move between two of ours (e.g. a delete
  // between a listing and a read).
  using OperationHook = std::function<void(std::string_view op, const std::string& path)>;
  void SetOperationHookForTest(OperationHook hook);
  // The next Create is applied but answers kConnectionLoss.
  void FailNextCreateAfterApplyingForTest();
  // Operations of another client (session kOtherSession), connected or not.
  static constexpr int64_t kOtherSession = 0x0ddba11;
  Status CreateAsOther(const std::string& path, std::string_view data, int flags = kPersistent,
                       std::string* created_path = nullptr);
  Status SetAsOther(const std::string& path, std::string_view data);
  Status DeleteAsOther(const std::string& path);
  // The tree as it is now, whatever the connection state.
  std::vector<std::string> ChildrenForTest(const std::string& path) const;
  std::optional<std::string> DataForTest(const std::string& path) const;
  std::optional<NodeStat> StatForTest(const std::string& path) const;
  // Blocks until every queued listener call and watch has run.
  void WaitIdleForTest();
  // Operations answered so far (each GetMany path counts once).
  int64_t operations_for_test() const;

 private:
  struct Node {
    std::string data;
    int32_t version = 0;
    int64_t ephemeral_owner = 0;
    int32_t next_sequence = 0;
  };
  using WatchTable = std::map<std::string, std::vector<Watch>>;

  // Runs the operation hook, then takes the lock; kConnectionLoss when disconnected.
  Status Begin(const char* op, const std::string& path, std::unique_lock<std::mutex>* lock);
  Status CreateLocked(const std::string& path, std::string_view data, int flags, int64_t owner,
                      std::string* created_path);
  Status DeleteLocked(const std::string& path, int version);
  Status SetLocked(const std::string& path, std::string_view data, int version);
  std::vector<std::string> ChildrenLocked(const std::string& path) const;
  std::optional<NodeStat> StatForTestLocked(const std::string& path) const;
  // Moves the watches on `path` in `table` to the event queue (or aside while disconnected).
  void TriggerLocked(WatchTable& table, const std::string& path);
  void PostLocked(std::function<void()> fn);
  void NotifyLocked(Event event);
  void RunEvents();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Node> tree_;
  WatchTable data_watches_, child_watches_;
  std::vector<Watch> deferred_;  // triggered while disconnected
  std::vector<Listener> listeners_;
  bool connected_ = false;
  int64_t session_ = 0;
  int64_t next_session_ = 0x1000;
  bool fail_next_create_ = false;
  OperationHook hook_;
  int64_t operations_ = 0;

  std::deque<std::function<void()>> queue_;
  bool running_ = false;  // an event is being handled
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace webtier::zk
