// Member registration: a reconciler thread that converges ZooKeeper to "one
// member znode owned by this session", woken by session events and by a watch
// on our own znode, and retrying every second while it is not registered.
#include "webtier/webnode/registration.h"

#include <algorithm>
#include <vector>

#include "webtier/common/log.h"
#include "webtier/common/membership.h"
#include "webtier/common/net.h"

namespace webtier::webnode {

MemberRegistration::MemberRegistration(zk::Client& session, std::string zk_path, serverset::Member member,
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
  // The node's identity beside its address: `* on(instance) group_left(id, zone)
  // webnode_member_info` puts the id on any webnode series.
  prometheus::BuildGauge()
      .Name("webnode_member_info")
      .Help("Always 1; labels id and zone are this node's member record, for joins on instance.")
      .Register(registry)
      .Add({{"id", member_.id}, {"zone", member_.zone}})
      .Set(1);
  session_.AddListener([this](zk::Client::Event e) { OnSessionEvent(e); });
}

MemberRegistration::~MemberRegistration() {
  {
    MutexLock l(&mu_);
    stopping_ = true;
  }
  cv_.SignalAll();
  if (thread_.joinable()) thread_.join();
}

void MemberRegistration::Start() { thread_ = std::thread([this] { Run(); }); }

std::string MemberRegistration::znode() const {
  MutexLock l(&mu_);
  return znode_;
}

void MemberRegistration::OnSessionEvent(zk::Client::Event e) {
  MutexLock l(&mu_);
  switch (e) {
    case zk::Client::Event::kSessionStarted:
    case zk::Client::Event::kReconnected:
      dirty_ = true;  // verify (or create) our znode
      break;
    case zk::Client::Event::kDisconnected:
      break;  // the session, and with it our znode, may well survive
    case zk::Client::Event::kExpired:
      expirations_.Increment();
      znode_.clear();
      registered_ = false;
      registered_gauge_.Set(0);
      dirty_ = true;
      log::Warn("registration", "session expired: member znode lost, will re-register");
      break;
  }
  cv_.SignalAll();
}

void MemberRegistration::Run() {
  MutexLock l(&mu_);
  while (!stopping_) {
    // Work only while connected and something needs checking; otherwise
    // sleep until a session event or the once-a-second re-check.
    if (!((dirty_ || !registered_) && session_.connected())) {
      cv_.WaitFor(&mu_, std::chrono::seconds(1));
      continue;
    }
    dirty_ = false;
    mu_.Unlock();
    Status s = Reconcile();
    mu_.Lock();
    if (!s.ok()) {
      dirty_ = true;
      log::Warn("registration", "registration failed, retrying").kv("err", s.ToString());
      const auto retry_at = std::chrono::steady_clock::now() + retry_delay_;
      while (!stopping_) {
        if (!cv_.WaitUntil(&mu_, retry_at)) break;  // the delay is over
      }
    }
  }
}

Status MemberRegistration::Reconcile() {
  const int64_t sid = session_.session_id();
  std::string keep;
  {
    MutexLock l(&mu_);
    keep = znode_;
  }
  // The common case after a reconnect: our znode is known and still ours.
  zk::NodeStat st;
  if (keep.empty() || !WatchOwn(keep, &st).ok() || st.ephemeral_owner != sid) {
    std::vector<std::string> mine;
    if (Status s = FindOwn(sid, &mine); !s.ok()) return s;
    if (mine.empty()) {
      if (Status s = CreateOwn(&keep); !s.ok()) return s;  // on connection loss the next attempt finds it
    } else {
      if (std::find(mine.begin(), mine.end(), keep) == mine.end()) keep = mine.front();
      for (const auto& extra : mine) {
        if (extra == keep) continue;
        Status d = session_.Delete(extra);
        log::Warn("registration", "removed duplicate member znode").kv("znode", extra).kv("result", d.ToString());
      }
    }
    if (Status w = WatchOwn(keep, &st); !w.ok()) return w;
  }
  {
    MutexLock l(&mu_);
    if (stopping_) return Status::Ok();
    znode_ = keep;
  }
  registered_ = true;
  registered_gauge_.Set(1);
  return Status::Ok();
}

Status MemberRegistration::FindOwn(int64_t sid, std::vector<std::string>* mine) {
  std::vector<std::string> children;
  Status s = session_.GetChildren(path_, &children);
  if (s.code() == ErrorCode::kNotFound) return session_.EnsurePath(path_);
  if (!s.ok()) return s;
  std::vector<std::string> paths;
  for (const auto& child : children) {
    if (membership::IsMemberName(child)) paths.push_back(path_ + "/" + child);
  }
  std::vector<zk::GetResult> got = session_.GetMany(paths);  // pipelined: thousands of members are fine
  for (size_t i = 0; i < paths.size(); ++i) {
    if (got[i].status.code() == ErrorCode::kNotFound) continue;
    if (!got[i].status.ok()) return got[i].status;
    if (got[i].stat.ephemeral_owner == sid) mine->push_back(paths[i]);
  }
  return Status::Ok();
}

Status MemberRegistration::CreateOwn(std::string* created) {
  serverset::Member m = member_;
  if (auto_host_) {
    m.host = net::LocalAddressToward(session_.ConnectedServerIp());
    if (m.host.empty()) return Status(ErrorCode::kUnavailable, "cannot detect the local address toward ZooKeeper");
  }
  const std::string prefix = path_ + "/" + std::string(membership::kMemberPrefix);
  Status s = session_.Create(prefix, serverset::Encode(m), zk::kEphemeral | zk::kSequence, created);
  if (s.ok()) log::Info("registration", "registered").kv("znode", *created).kv("address", m.Address()).kv("id", m.id);
  return s;
}

Status MemberRegistration::WatchOwn(const std::string& znode, zk::NodeStat* stat) {
  Status w = session_.Exists(znode, stat, [this] { MarkDirty(); });
  if (w.code() == ErrorCode::kNotFound) return Status(ErrorCode::kNotFound, "member znode vanished: " + znode);
  return w;
}

void MemberRegistration::MarkDirty() {
  MutexLock l(&mu_);
  dirty_ = true;
  cv_.SignalAll();
}

Status MemberRegistration::Deregister() {
  std::string node;
  {
    MutexLock l(&mu_);
    stopping_ = true;
    node = znode_;
    znode_.clear();
  }
  cv_.SignalAll();
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
