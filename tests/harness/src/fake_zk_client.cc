// The in-memory ZooKeeper of the unit tests: a map of znodes, one-shot watch
// tables like the real session's, and an event thread that runs listeners
// and watches one at a time.
#include "webtier/testing/fake_zk_client.h"

#include <cstdio>

namespace webtier::zk {

namespace {

std::string Parent(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == 0 ? "/" : path.substr(0, slash);
}

Status NoNode(const char* op, const std::string& path) {
  return Status(ErrorCode::kNotFound, std::string(op) + " " + path + ": no node");
}

}  // namespace

FakeClient::FakeClient() {
  tree_["/"] = Node{};
  thread_ = std::thread([this] { RunEvents(); });
}

FakeClient::~FakeClient() {
  {
    MutexLock l(&mu_);
    stopping_ = true;
  }
  cv_.SignalAll();
  thread_.join();
}

void FakeClient::AddListener(Listener listener) {
  MutexLock l(&mu_);
  listeners_.push_back(std::move(listener));
}

bool FakeClient::connected() const {
  MutexLock l(&mu_);
  return connected_;
}

int64_t FakeClient::session_id() const {
  MutexLock l(&mu_);
  return connected_ ? session_ : 0;
}

std::string FakeClient::ConnectedServerIp() const { return connected() ? "127.0.0.1" : ""; }
int FakeClient::negotiated_timeout_ms() const { return 6000; }

void FakeClient::RunHook(const char* op, const std::string& path) {
  OperationHook hook;
  {
    MutexLock l(&mu_);
    hook = hook_;
  }
  if (hook) hook(op, path);
}

Status FakeClient::BeginLocked(const char* op, const std::string& path) {
  ++operations_;
  if (connected_) return Status::Ok();
  return Status(ErrorCode::kConnectionLoss, std::string(op) + " " + path + ": connection loss");
}

Status FakeClient::Create(const std::string& path, std::string_view data, int flags, std::string* created_path) {
  RunHook("create", path);
  MutexLock l(&mu_);
  if (Status s = BeginLocked("create", path); !s.ok()) return s;
  Status s = CreateLocked(path, data, flags, (flags & kEphemeral) ? session_ : 0, created_path);
  if (s.ok() && fail_next_create_) {
    fail_next_create_ = false;
    return Status(ErrorCode::kConnectionLoss, "create " + path + ": connection loss (after applying)");
  }
  return s;
}

Status FakeClient::Delete(const std::string& path, int version) {
  RunHook("delete", path);
  MutexLock l(&mu_);
  if (Status s = BeginLocked("delete", path); !s.ok()) return s;
  return DeleteLocked(path, version);
}

Status FakeClient::Get(const std::string& path, std::string* data, NodeStat* stat, Watch watch) {
  RunHook("get", path);
  MutexLock l(&mu_);
  if (Status s = BeginLocked("get", path); !s.ok()) return s;
  auto it = tree_.find(path);
  if (it == tree_.end()) return NoNode("get", path);
  if (data != nullptr) *data = it->second.data;
  if (stat != nullptr) *stat = *StatForTestLocked(path);
  if (watch) data_watches_[path].push_back(std::move(watch));
  return Status::Ok();
}

Status FakeClient::Set(const std::string& path, std::string_view data, int version) {
  RunHook("set", path);
  MutexLock l(&mu_);
  if (Status s = BeginLocked("set", path); !s.ok()) return s;
  return SetLocked(path, data, version);
}

Status FakeClient::Exists(const std::string& path, NodeStat* stat, Watch watch) {
  RunHook("exists", path);
  MutexLock l(&mu_);
  if (Status s = BeginLocked("exists", path); !s.ok()) return s;
  if (watch) data_watches_[path].push_back(std::move(watch));  // armed even when missing
  auto st = StatForTestLocked(path);
  if (!st) return NoNode("exists", path);
  if (stat != nullptr) *stat = *st;
  return Status::Ok();
}

Status FakeClient::GetChildren(const std::string& path, std::vector<std::string>* children, Watch watch) {
  RunHook("get_children", path);
  MutexLock l(&mu_);
  if (Status s = BeginLocked("get_children", path); !s.ok()) return s;
  if (!tree_.count(path)) return NoNode("get_children", path);
  if (children != nullptr) *children = ChildrenLocked(path);
  if (watch) child_watches_[path].push_back(std::move(watch));
  return Status::Ok();
}

Status FakeClient::CreateLocked(const std::string& path, std::string_view data, int flags, int64_t owner,
                                std::string* created_path) {
  if (path.size() < 2 || path.front() != '/' || path.back() == '/')
    return Status(ErrorCode::kInvalidArgument, "create " + path + ": bad path");
  const std::string parent = Parent(path);
  auto p = tree_.find(parent);
  if (p == tree_.end()) return NoNode("create", path);
  if (p->second.ephemeral_owner != 0)
    return Status(ErrorCode::kInvalidArgument, "create " + path + ": no children for ephemerals");
  std::string name = path;
  if (flags & kSequence) {
    char seq[16];
    std::snprintf(seq, sizeof seq, "%010d", p->second.next_sequence);
    name += seq;
  }
  ++p->second.next_sequence;
  if (tree_.count(name)) return Status(ErrorCode::kAlreadyExists, "create " + name + ": node exists");
  tree_[name] = Node{std::string(data), 0, owner, 0};
  if (created_path != nullptr) *created_path = name;
  TriggerLocked(data_watches_, name);
  TriggerLocked(child_watches_, parent);
  return Status::Ok();
}

Status FakeClient::DeleteLocked(const std::string& path, int version) {
  auto it = tree_.find(path);
  if (it == tree_.end() || path == "/") return NoNode("delete", path);
  if (version >= 0 && it->second.version != version)
    return Status(ErrorCode::kInvalidArgument, "delete " + path + ": bad version");
  if (!ChildrenLocked(path).empty()) return Status(ErrorCode::kInvalidArgument, "delete " + path + ": not empty");
  tree_.erase(it);
  TriggerLocked(data_watches_, path);
  TriggerLocked(child_watches_, path);
  TriggerLocked(child_watches_, Parent(path));
  return Status::Ok();
}

Status FakeClient::SetLocked(const std::string& path, std::string_view data, int version) {
  auto it = tree_.find(path);
  if (it == tree_.end()) return NoNode("set", path);
  if (version >= 0 && it->second.version != version)
    return Status(ErrorCode::kInvalidArgument, "set " + path + ": bad version");
  it->second.data = std::string(data);
  ++it->second.version;
  TriggerLocked(data_watches_, path);
  return Status::Ok();
}

std::vector<std::string> FakeClient::ChildrenLocked(const std::string& path) const {
  const std::string prefix = path == "/" ? "/" : path + "/";
  std::vector<std::string> out;
  for (auto it = tree_.lower_bound(prefix); it != tree_.end() && it->first.rfind(prefix, 0) == 0; ++it) {
    std::string rest = it->first.substr(prefix.size());
    if (!rest.empty() && rest.find('/') == std::string::npos) out.push_back(std::move(rest));
  }
  return out;
}

std::optional<NodeStat> FakeClient::StatForTestLocked(const std::string& path) const {
  auto it = tree_.find(path);
  if (it == tree_.end()) return std::nullopt;
  return NodeStat{it->second.version, it->second.ephemeral_owner,
                  static_cast<int32_t>(ChildrenLocked(path).size())};
}

void FakeClient::TriggerLocked(WatchTable& table, const std::string& path) {
  auto it = table.find(path);
  if (it == table.end()) return;
  std::vector<Watch> fired = std::move(it->second);
  table.erase(it);
  for (auto& w : fired) {
    if (connected_) PostLocked(std::move(w));
    else deferred_.push_back(std::move(w));
  }
}

void FakeClient::PostLocked(std::function<void()> fn) {
  queue_.push_back(std::move(fn));
  cv_.SignalAll();
}

void FakeClient::NotifyLocked(Event event) {
  PostLocked([this, event] {
    std::vector<Listener> listeners;
    {
      MutexLock l(&mu_);
      listeners = listeners_;
    }
    for (auto& listener : listeners) listener(event);
  });
}

void FakeClient::RunEvents() {
  for (;;) {
    std::function<void()> fn;
    {
      MutexLock l(&mu_);
      while (!stopping_ && queue_.empty()) cv_.Wait(&mu_);
      if (stopping_) return;
      fn = std::move(queue_.front());
      queue_.pop_front();
      running_ = true;
    }
    fn();
    MutexLock l(&mu_);
    running_ = false;
    cv_.SignalAll();
    fn = nullptr;  // still under the lock: its captures are gone before WaitIdleForTest() returns
  }
}

void FakeClient::StartSession() {
  MutexLock l(&mu_);
  session_ = next_session_++;
  connected_ = true;
  NotifyLocked(Event::kSessionStarted);
}

void FakeClient::DropConnection() {
  MutexLock l(&mu_);
  if (!connected_) return;
  connected_ = false;
  NotifyLocked(Event::kDisconnected);
}

void FakeClient::Reconnect() {
  MutexLock l(&mu_);
  if (connected_ || session_ == 0) return;
  connected_ = true;
  NotifyLocked(Event::kReconnected);
  for (auto& w : deferred_) PostLocked(std::move(w));
  deferred_.clear();
}

void FakeClient::ExpireSession(bool start_new) {
  {
    MutexLock l(&mu_);
    connected_ = false;
    data_watches_.clear();
    child_watches_.clear();
    deferred_.clear();
    std::vector<std::string> ephemerals;
    for (const auto& [path, node] : tree_) {
      if (node.ephemeral_owner == session_ && session_ != 0) ephemerals.push_back(path);
    }
    for (const auto& path : ephemerals) DeleteLocked(path, -1).IgnoreError();  // each exists: listed just above
    session_ = 0;
    NotifyLocked(Event::kExpired);
  }
  if (start_new) StartSession();
}

void FakeClient::SetOperationHookForTest(OperationHook hook) {
  MutexLock l(&mu_);
  hook_ = std::move(hook);
}

void FakeClient::FailNextCreateAfterApplyingForTest() {
  MutexLock l(&mu_);
  fail_next_create_ = true;
}

Status FakeClient::CreateAsOther(const std::string& path, std::string_view data, int flags,
                                 std::string* created_path) {
  MutexLock l(&mu_);
  return CreateLocked(path, data, flags, (flags & kEphemeral) ? kOtherSession : 0, created_path);
}

Status FakeClient::SetAsOther(const std::string& path, std::string_view data) {
  MutexLock l(&mu_);
  return SetLocked(path, data, -1);
}

Status FakeClient::DeleteAsOther(const std::string& path) {
  MutexLock l(&mu_);
  return DeleteLocked(path, -1);
}

std::vector<std::string> FakeClient::ChildrenForTest(const std::string& path) const {
  MutexLock l(&mu_);
  return ChildrenLocked(path);
}

std::optional<std::string> FakeClient::DataForTest(const std::string& path) const {
  MutexLock l(&mu_);
  auto it = tree_.find(path);
  if (it == tree_.end()) return std::nullopt;
  return it->second.data;
}

std::optional<NodeStat> FakeClient::StatForTest(const std::string& path) const {
  MutexLock l(&mu_);
  return StatForTestLocked(path);
}

void FakeClient::WaitIdleForTest() {
  MutexLock l(&mu_);
  while (!queue_.empty() || running_) cv_.Wait(&mu_);
}

int64_t FakeClient::operations_for_test() const {
  MutexLock l(&mu_);
  return operations_;
}

}  // namespace webtier::zk
