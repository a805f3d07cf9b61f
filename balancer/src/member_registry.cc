// ZooKeeper membership: list + watch, read + watch, decode, diff, persist.
#include "webtier/balancer/member_registry.h"

#include <algorithm>

#include "webtier/balancer/proxy_metrics.h"
#include "webtier/balancer/state_file.h"
#include "webtier/common/log.h"
#include "webtier/common/serverset.h"

namespace webtier::balancer {

namespace {
constexpr const char* kComponent = "members";
}

MemberRegistry::MemberRegistry(zk::Client& session, Options options, MembershipListener& listener,
                               ProxyMetrics* metrics)
    : session_(session), options_(std::move(options)), listener_(listener), metrics_(metrics) {
  session_.AddListener([this](zk::Client::Event e) { OnSessionEvent(e); });
}

std::string MemberRegistry::zk_state() const {
  switch (state_.load()) {
    case 1: return "connected";
    case 2: return "disconnected";
    case 3: return "expired";
    default: return "connecting";
  }
}

std::string MemberRegistry::source() const {
  std::lock_guard lock(mu_);
  return source_;
}

Status MemberRegistry::LoadStateFile() {
  if (options_.state_file.empty()) return Status(ErrorCode::kNotFound, "no --state-file");
  std::vector<MemberRecord> records;
  int invalid = 0;
  Status s = balancer::LoadStateFile(options_.state_file, &records, &invalid);
  if (!s.ok()) return s;
  if (invalid > 0) {
    log::Warn(kComponent, "state file entries ignored").kv("count", invalid).kv("path", options_.state_file);
    if (metrics_) metrics_->invalid_members.Increment(invalid);
  }
  std::lock_guard lock(mu_);
  if (synced_.load()) return Status::Ok();  // ZooKeeper answered meanwhile: it wins
  std::map<std::string, MemberRecord> next;
  for (auto& r : records) next.emplace(r.key, std::move(r));
  ApplyLocked(std::move(next));
  source_ = "state_file";
  log::Info(kComponent, "pool loaded from state file").kv("members", current_.size()).kv("path", options_.state_file);
  return Status::Ok();
}

void MemberRegistry::OnSessionEvent(zk::Client::Event event) {
  switch (event) {
    case zk::Client::Event::kSessionStarted: {
      {
        std::lock_guard lock(mu_);
        children_watched_ = exists_watched_ = false;  // a new session has none of our watches
        data_watched_.clear();
      }
      state_ = 1;
      if (metrics_) metrics_->zk_connected.Set(1);
      Sync();
      break;
    }
    case zk::Client::Event::kReconnected:
      state_ = 1;
      if (metrics_) metrics_->zk_connected.Set(1);
      Sync();  // changes may have been missed while away; watches are still armed
      break;
    case zk::Client::Event::kDisconnected: {
      std::lock_guard lock(mu_);
      state_ = 2;
      if (metrics_) metrics_->zk_connected.Set(0);
      log::Warn(kComponent, "ZooKeeper disconnected; keeping the last known pool").kv("members", current_.size());
      break;
    }
    case zk::Client::Event::kExpired: {
      std::lock_guard lock(mu_);
      children_watched_ = exists_watched_ = false;
      data_watched_.clear();
      state_ = 3;
      if (metrics_) metrics_->zk_connected.Set(0);
      log::Warn(kComponent, "ZooKeeper session expired; keeping the last known pool").kv("members", current_.size());
      break;
    }
  }
}

void MemberRegistry::Sync() {
  std::lock_guard lock(mu_);
  SyncLocked();
}

void MemberRegistry::SyncLocked() {
  std::vector<std::string> children;
  zk::Client::Watch watch;
  if (!children_watched_) {
    watch = [this] {
      {
        std::lock_guard lock(mu_);
        children_watched_ = false;
      }
      Sync();
    };
  }
  Status s = session_.GetChildren(options_.path, &children, std::move(watch));
  if (s.code() == ErrorCode::kNotFound) {
    // The path does not exist (yet): no members. Wait for it to appear.
    if (!exists_watched_) {
      exists_watched_ = true;
      Status e = session_.Exists(options_.path, nullptr, [this] {
        {
          std::lock_guard lock(mu_);
          exists_watched_ = false;
        }
        Sync();
      });
      if (e.ok()) {  // created between the two calls
        SyncLocked();
        return;
      }
      if (e.code() != ErrorCode::kNotFound) {
        exists_watched_ = false;
        log::Warn(kComponent, "exists failed").kv("path", options_.path).kv("err", e.ToString());
        return;
      }
    }
    log::Info(kComponent, "membership path does not exist yet; waiting").kv("path", options_.path);
    ApplyLocked({});
    source_ = "zookeeper";
    synced_ = true;
    return;
  }
  if (!s.ok()) {
    log::Warn(kComponent, "listing members failed; keeping the pool").kv("path", options_.path).kv("err", s.ToString());
    return;
  }
  if (!children_watched_) children_watched_ = true;

  std::map<std::string, MemberRecord> next;
  for (const auto& key : children) {
    if (data_watched_.count(key)) {  // known and watched: a change would have told us
      if (auto it = current_.find(key); it != current_.end()) next.emplace(key, it->second);
      continue;
    }
    MemberRecord rec;
    if (ReadMemberLocked(key, &rec)) next.emplace(key, std::move(rec));
  }
  // Forget invalid records whose znodes are gone, so a new one is counted again.
  for (auto it = invalid_.begin(); it != invalid_.end();) {
    if (std::find(children.begin(), children.end(), it->first) == children.end()) it = invalid_.erase(it);
    else ++it;
  }
  ApplyLocked(std::move(next));
  source_ = "zookeeper";
  synced_ = true;
}

bool MemberRegistry::ReadMemberLocked(const std::string& key, MemberRecord* out) {
  std::string data;
  const std::string path = options_.path + "/" + key;
  zk::Client::Watch watch;
  const bool arm = !data_watched_.count(key);
  if (arm) watch = [this, key] { OnMemberChanged(key); };
  Status s = session_.Get(path, &data, nullptr, std::move(watch));
  if (s.code() == ErrorCode::kNotFound) return false;  // deleted between list and read: not an error
  if (!s.ok()) {
    log::Warn(kComponent, "reading member failed").kv("path", path).kv("err", s.ToString());
    // Keep what we had for it, if anything.
    if (auto it = current_.find(key); it != current_.end()) {
      *out = it->second;
      return true;
    }
    return false;
  }
  if (arm) data_watched_.insert(key);
  Status d = serverset::Decode(data, &out->member);
  if (!d.ok()) {
    auto [it, fresh] = invalid_.emplace(key, data);
    if (fresh || it->second != data) {
      it->second = data;
      log::Warn(kComponent, "invalid member ignored").kv("path", path).kv("err", d.message());
      if (metrics_) metrics_->invalid_members.Increment();
    }
    return false;
  }
  invalid_.erase(key);
  out->key = key;
  return true;
}

void MemberRegistry::OnMemberChanged(const std::string& key) {
  std::lock_guard lock(mu_);
  data_watched_.erase(key);
  std::map<std::string, MemberRecord> next = current_;
  next.erase(key);
  MemberRecord rec;
  if (ReadMemberLocked(key, &rec)) next[key] = std::move(rec);
  ApplyLocked(std::move(next));
}

void MemberRegistry::ApplyLocked(std::map<std::string, MemberRecord> next) {
  std::vector<MemberRecord> added;
  std::vector<std::string> removed;
  for (const auto& [key, rec] : current_) {
    auto it = next.find(key);
    if (it == next.end()) removed.push_back(key);
    else if (!(it->second == rec)) {
      removed.push_back(key);
      added.push_back(it->second);
    }
  }
  for (const auto& [key, rec] : next) {
    if (!current_.count(key)) added.push_back(rec);
  }
  if (added.empty() && removed.empty()) return;
  current_ = std::move(next);
  listener_.OnMembershipUpdate(added, removed);
  if (!options_.state_file.empty()) {
    std::vector<MemberRecord> all;
    for (const auto& [key, rec] : current_) all.push_back(rec);
    Status s = SaveStateFile(options_.state_file, all);
    if (!s.ok()) log::Warn(kComponent, "saving state file failed").kv("err", s.ToString());
  }
}

}  // namespace webtier::balancer
