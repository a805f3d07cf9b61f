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
    std::lock_guard l(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void FakeClient::AddListener(Listener listener) {
  std::lock_guard l(mu_);
  listeners_.push_back(std::move(listener));
}

bool FakeClient::connected() const {
  std::lock_guard l(mu_);
  return connected_;
}

int64_t FakeClient::session_id() const {
  std::lock_guard l(mu_);
  return connected_ ? session_ : 0;
}

std::string FakeClient::ConnectedServerIp() const { return connected() ? "127.0.0.1" : ""; }
int FakeClient::negotiated_timeout_ms() const { return 6000; }

Status FakeClient::Begin(const char* op, const std::string& path, std::unique_lock<std::mutex>* lock) {
  OperationHook hook;
  {
    std::lock_guard l(mu_);
    hook = hook_;
  }
  if (hook) hook(op, path);
  *lock = std::unique_lock(mu_);
  ++operations_;
  if (connected_) return Status::Ok();
  return Status(ErrorCode::kConnectionLoss, std::string(op) + " " + path + ": connection loss");
}

Status FakeClient::Create(const std::string& path, std::string_view data, int flags, std::string* created_path) {
  std::unique_lock<std::mutex> l;
  if (Status s = Begin("create", path, &l); !s.ok()) return s;
  Status s = CreateLocked(path, data, flags, (flags & kEphemeral) ? session_ : 0, created_path);
  if (s.ok() && fail_next_create_) {
    fail_next_create_ = false;
    return Status(ErrorCode::kConnectionLoss, "create " + path + ": connection loss (after applying)");
  }
  return s;
}

Status FakeClient::Delete(const std::string& path, int version) {
  std::unique_lock<std::mutex> l;
  if (Status s = Begin("delete", path, &l); !s.ok()) return s;
  return DeleteLocked(path, version);
}

Status FakeClient::Get(const std::string& path, std::string* data, NodeStat* stat, Watch watch) {
  std::unique_lock<std::mutex> l;
  if (Status s = Begin("get", path, &l); !s.ok()) return s;
  auto it = tree_.find(path);
  if (it == tree_.end()) return NoNode("get", path);
  if (data != nullptr) *data = it->second.data;
  if (stat != nullptr) *stat = *StatForTestLocked(path);
  if (watch) data_watches_[path].push_back(std::move(watch));
  return Status::Ok();
}

Status FakeClient::Set(const std::string& path, std::string_view data, int version) {
  std::unique_lock<std::mutex> l;
  if (Status s = Begin("set", path, &l); !s.ok()) return s;
  return SetLocked(path, data, version);
}

Status FakeClient::Exists(const std::string& path, NodeStat* stat, Watch watch) {
  std::unique_lock<std::mutex> l;
  if (Status s = Begin("exists", path, &l); !s.ok()) return s;
  if (watch) data_watches_[path].push_back(std::move(watch));  // armed even when missing
  auto st = StatForTestLocked(path);
  if (!st) return NoNode("exists", path);
  if (stat != nullptr) *stat = *st;
  return Status::Ok();
}

Status FakeClient::GetChildren(const std::string& path, std::vector<std::string>* children, Watch watch) {
  std::unique_lock<std::mutex> l;
  if (Status s = Begin("get_children", path, &l); !s.ok()) return s;
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
  cv_.notify_all();
}

void FakeClient::NotifyLocked(Event event) {
  PostLocked([this, event] {
    std::vector<Listener> listeners;
    {
      std::lock_guard l(mu_);
      listeners = listeners_;
    }
    for (auto& listener : listeners) listener(event);
  });
}

void FakeClient::RunEvents() {
  std::unique_lock l(mu_);
  for (;;) {
    cv_.wait(l, [&] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    auto fn = std::move(queue_.front());
    queue_.pop_front();
    running_ = true;
    l.unlock();
    fn();
    l.lock();
    running_ = false;
    cv_.notify_all();
  }
}

void FakeClient::StartSession() {
  std::lock_guard l(mu_);
  session_ = next_session_++;
  connected_ = true;
  NotifyLocked(Event::kSessionStarted);
}

void FakeClient::DropConnection() {
  std::lock_guard l(mu_);
  if (!connected_) return;
  connected_ = false;
  NotifyLocked(Event::kDisconnected);
}

void FakeClient::Reconnect() {
  std::lock_guard l(mu_);
  if (connected_ || session_ == 0) return;
  connected_ = true;
  NotifyLocked(Event::kReconnected);
  for (auto& w : deferred_) PostLocked(std::move(w));
  deferred_.clear();
}

void FakeClient::ExpireSession(bool start_new) {
  {
    std::lock_guard l(mu_);
    connected_ = false;
    data_watches_.clear();
    child_watches_.clear();
    deferred_.clear();
    std::vector<std::string> ephemerals;
    for (const auto& [path, node] : tree_) {
      if (node.ephemeral_owner == session_ && session_ != 0) ephemerals.push_back(path);
    }
    for (const auto& path : ephemerals) DeleteLocked(path, -1);
    session_ = 0;
    NotifyLocked(Event::kExpired);
  }
  if (start_new) StartSession();
}

void FakeClient::SetOperationHookForTest(OperationHook hook) {
  std::lock_guard l(mu_);
  hook_ = std::move(hook);
}

void FakeClient::FailNextCreateAfterApplyingForTest() {
  std::lock_guard l(mu_);
  fail_next_create_ = true;
}

Status FakeClient::CreateAsOther(const std::string& path, std::string_view data, int flags,
                                 std::string* created_path) {
  std::lock_guard l(mu_);
  return CreateLocked(path, data, flags, (flags & kEphemeral) ? kOtherSession : 0, created_path);
}

Status FakeClient::SetAsOther(const std::string& path, std::string_view data) {
  std::lock_guard l(mu_);
  return SetLocked(path, data, -1);
}

Status FakeClient::DeleteAsOther(const std::string& path) {
  std::lock_guard l(mu_);
  return DeleteLocked(path, -1);
}

std::vector<std::string> FakeClient::ChildrenForTest(const std::string& path) const {
  std::lock_guard l(mu_);
  return ChildrenLocked(path);
}

std::optional<std::string> FakeClient::DataForTest(const std::string& path) const {
  std::lock_guard l(mu_);
  auto it = tree_.find(path);
  if (it == tree_.end()) return std::nullopt;
  return it->second.data;
}

std::optional<NodeStat> FakeClient::StatForTest(const std::string& path) const {
  std::lock_guard l(mu_);
  return StatForTestLocked(path);
}

void FakeClient::WaitIdleForTest() {
  std::unique_lock l(mu_);
  cv_.wait(l, [&] { return queue_.empty() && !running_; });
}

int64_t FakeClient::operations_for_test() const {
  std::lock_guard l(mu_);
  return operations_;
}

}  // namespace webtier::zk
