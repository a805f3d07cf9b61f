// Member registration: a reconciler thread that converges ZooKeeper to "one
// member znode owned by this session", woken by session events and by a watch
// on our own znode, and retrying every second while it is not registered.
#include "webtier/webnode/registration.h"

#include <algorithm>
#include <vector>

#include "webtier/common/log.h"
#include "webtier/common/net.h"

namespace webtier::webnode {

MemberRegistration::MemberRegistration(zk::Session& session, std::string zk_path, serverset::Member member,
                                       prometheus::Registry& registry)
    : session_(session),
      path_(std::move(zk_path)),
      member_(std::move(member)),
      auto_host_(member_.host.empty()),
      registered_gauge_(prometheus::BuildGauge()
                            .Name("webnode_zk_registered")
                            .Help("1 while this node's member znode exists in ZooKeeper.")
                            .Register(registry)
                            .Add({})),
      expirations_(prometheus::BuildCounter()
                       .Name("webnode_zk_session_expirations_total")
                       .Help("ZooKeeper sessions lost to expiry (each one re-registers).")
                       .Register(registry)
                       .Add({})) {
  session_.AddListener([this](zk::Session::Event e) { OnSessionEvent(e); });
}

MemberRegistration::~MemberRegistration() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void MemberRegistration::Start() { thread_ = std::thread([this] { Run(); }); }

std::string MemberRegistration::znode() const {
  std::lock_guard<std::mutex> l(mu_);
  return znode_;
}

void MemberRegistration::OnSessionEvent(zk::Session::Event e) {
  std::lock_guard<std::mutex> l(mu_);
  switch (e) {
    case zk::Session::Event::kSessionStarted:
    case zk::Session::Event::kReconnected:
      dirty_ = true;  // verify (or create) our znode
      break;
    case zk::Session::Event::kDisconnected:
      break;  // the session, and with it our znode, may well survive
    case zk::Session::Event::kExpired:
      expirations_.Increment();
      znode_.clear();
      registered_ = false;
      registered_gauge_.Set(0);
      dirty_ = true;
      log::Warn("registration", "session expired: member znode lost, will re-register");
      break;
  }
  cv_.notify_all();
}

void MemberRegistration::Run() {
  std::unique_lock<std::mutex> l(mu_);
  while (!stopping_) {
    // Work only while connected and something needs checking; otherwise
    // sleep until a session event or the once-a-second re-check.
    if (!((dirty_ || !registered_) && session_.connected())) {
      cv_.wait_for(l, std::chrono::seconds(1));
      continue;
    }
    dirty_ = false;
    l.unlock();
    Status s = Reconcile();
    l.lock();
    if (!s.ok()) {
      dirty_ = true;
      log::Warn("registration", "registration failed, retrying").kv("err", s.ToString());
      cv_.wait_for(l, std::chrono::milliseconds(500), [&] { return stopping_; });
    }
  }
}

Status MemberRegistration::Reconcile() {
  const int64_t sid = session_.session_id();
  std::vector<std::string> children;
  Status s = session_.GetChildren(path_, &children);
  if (s.code() == ErrorCode::kNotFound) {
    s = session_.EnsurePath(path_);
    if (!s.ok()) return s;
    children.clear();
  } else if (!s.ok()) {
    return s;
  }

  // Find the member znodes our session owns (a create that returned
  // connection loss may have succeeded; never leave a duplicate behind).
  std::string keep;
  {
    std::lock_guard<std::mutex> l(mu_);
    keep = znode_;
  }
  std::vector<std::string> mine;
  for (const auto& child : children) {
    if (child.rfind("member_", 0) != 0) continue;
    zk::NodeStat st;
    std::string full = path_ + "/" + child;
    Status g = session_.Get(full, nullptr, &st);
    if (g.code() == ErrorCode::kNotFound) continue;
    if (!g.ok()) return g;
    if (st.ephemeral_owner == sid) mine.push_back(full);
  }
  if (!mine.empty()) {
    if (keep.empty() || std::find(mine.begin(), mine.end(), keep) == mine.end()) keep = mine.front();
    for (const auto& extra : mine) {
      if (extra == keep) continue;
      Status d = session_.Delete(extra);
      log::Warn("registration", "removed duplicate member znode").kv("znode", extra).kv("result", d.ToString());
    }
  } else {
    serverset::Member m = member_;
    if (auto_host_) {
      m.host = net::LocalAddressToward(session_.ConnectedServerIp());
      if (m.host.empty()) return Status(ErrorCode::kUnavailable, "cannot detect the local address toward ZooKeeper");
    }
    std::string created;
    s = session_.Create(path_ + "/member_", serverset::Encode(m), zk::kEphemeral | zk::kSequence, &created);
    if (!s.ok()) return s;  // on connection loss the next reconnect reconciles again
    keep = created;
    log::Info("registration", "registered").kv("znode", created).kv("address", m.Address()).kv("id", m.id);
  }
  // Watch our znode so that a delete by someone else makes us re-create it.
  Status w = session_.Exists(keep, nullptr, [this] {
    std::lock_guard<std::mutex> l(mu_);
    dirty_ = true;
    cv_.notify_all();
  });
  if (w.code() == ErrorCode::kNotFound) return Status(ErrorCode::kNotFound, "member znode vanished: " + keep);
  if (!w.ok()) return w;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_) return Status::Ok();
    znode_ = keep;
  }
  registered_ = true;
  registered_gauge_.Set(1);
  return Status::Ok();
}

Status MemberRegistration::Deregister() {
  std::string node;
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
    node = znode_;
    znode_.clear();
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  registered_ = false;
  registered_gauge_.Set(0);
  if (node.empty()) return Status::Ok();
  Status s = session_.Delete(node);
  if (s.code() == ErrorCode::kNotFound) s = Status::Ok();
  log::Info("registration", "deregistered").kv("znode", node).kv("result", s.ToString());
  return s;
}

}  // namespace webtier::webnode
