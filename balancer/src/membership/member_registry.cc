// ZooKeeper membership in batches: watches mark work, the registry thread
// lists, reads (pipelined), decodes, diffs and hands one delta to the pool.
#include "webtier/balancer/membership/member_registry.h"

#include "webtier/balancer/telemetry/proxy_metrics.h"
#include "webtier/common/log.h"
#include "webtier/common/serverset.h"

namespace webtier::balancer {

namespace {
constexpr const char* kComponent = "members";
}

MemberRegistry::MemberRegistry(zk::Client& session, Options options, MembershipListener& listener,
                               ProxyMetrics* metrics)
    : session_(session), options_(std::move(options)), listener_(listener), metrics_(metrics) {
  if (!options_.state_file.empty())
    state_writer_ = std::make_unique<StateFileWriter>(options_.state_file, options_.state_file_interval);
  session_.AddListener([this](zk::Client::Event e) { OnSessionEvent(e); });
  thread_ = std::thread([this] { Run(); });
}

MemberRegistry::~MemberRegistry() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  cv_.SignalAll();
  thread_.join();
  state_writer_.reset();  // writes the last pool
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
  MutexLock lock(&mu_);
  return source_;
}

void MemberRegistry::FlushStateFileForTest() {
  if (state_writer_) state_writer_->Flush();
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
  MutexLock update(&update_mu_);
  if (synced_.load()) return Status::Ok();  // ZooKeeper answered meanwhile: it wins
  std::map<std::string, MemberRecord> next;
  for (auto& r : records) next.emplace(r.key, std::move(r));
  ApplyLocked(std::move(next));
  {
    MutexLock lock(&mu_);
    source_ = "state_file";
  }
  log::Info(kComponent, "pool loaded from state file").kv("members", members_.load()).kv("path", options_.state_file);
  return Status::Ok();
}

void MemberRegistry::OnSessionEvent(zk::Client::Event event) {
  MutexLock lock(&mu_);
  switch (event) {
    case zk::Client::Event::kSessionStarted:
      ++epoch_;  // a new session has none of our watches
      children_watched_ = exists_watched_ = false;
      data_watched_.clear();
      [[fallthrough]];
    case zk::Client::Event::kReconnected:  // changes may have been missed while away; watches are still armed
      state_ = 1;
      if (metrics_) metrics_->zk_connected.Set(1);
      relist_ = true;
      cv_.SignalAll();
      break;
    case zk::Client::Event::kDisconnected:
      state_ = 2;
      if (metrics_) metrics_->zk_connected.Set(0);
      log::Warn(kComponent, "ZooKeeper disconnected; keeping the last known pool").kv("members", members_.load());
      break;
    case zk::Client::Event::kExpired:
      ++epoch_;
      children_watched_ = exists_watched_ = false;
      data_watched_.clear();
      state_ = 3;
      if (metrics_) metrics_->zk_connected.Set(0);
      log::Warn(kComponent, "ZooKeeper session expired; keeping the last known pool").kv("members", members_.load());
      break;
  }
}

void MemberRegistry::OnMemberChanged(const std::string& key) {
  MutexLock lock(&mu_);
  data_watched_.erase(key);
  changed_.insert(key);
  cv_.SignalAll();
}

void MemberRegistry::Wake() {
  MutexLock lock(&mu_);
  relist_ = true;
  cv_.SignalAll();
}

void MemberRegistry::Run() {
  while (true) {
    bool relist;
    std::set<std::string> changed;
    {
      MutexLock lock(&mu_);
      while (!stopping_ && !relist_ && changed_.empty()) cv_.Wait(&mu_);
      if (stopping_) return;
      // Everything that arrived together is one batch; what arrives while it
      // is read and applied is the next one.
      relist = std::exchange(relist_, false);
      changed = std::exchange(changed_, {});
    }
    Batch batch;
    const auto start = std::chrono::steady_clock::now();
    if (Fetch(relist, changed, &batch)) {
      const auto fetched = std::chrono::steady_clock::now();
      ApplyBatch(batch);
      log::Debug(kComponent, "batch applied")
          .kv("listed", batch.children.size())
          .kv("read", batch.keys.size())
          .kv("fetch_us", std::chrono::duration_cast<std::chrono::microseconds>(fetched - start).count())
          .kv("apply_us",
              std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - fetched).count());
    }
  }
}

bool MemberRegistry::Fetch(bool relist, const std::set<std::string>& changed, Batch* batch) {
  if (relist) {
    if (!List(&batch->children)) return false;  // keep the pool; the next (re)connection lists again
    batch->listed = true;
    MutexLock lock(&mu_);
    for (const auto& key : batch->children) {
      if (!data_watched_.count(key)) batch->keys.push_back(key);  // watched ones would have told us
    }
  } else {
    batch->keys.assign(changed.begin(), changed.end());
  }
  Read(batch);
  return true;
}

bool MemberRegistry::List(std::vector<std::string>* children) {
  zk::Client::Watch watch;
  {
    MutexLock lock(&mu_);
    if (!children_watched_) watch = [this] {
      {
        MutexLock l(&mu_);
        children_watched_ = false;
      }
      Wake();
    };
  }
  const bool arming = static_cast<bool>(watch);
  Status s = session_.GetChildren(options_.path, children, std::move(watch));
  if (s.ok()) {
    MutexLock lock(&mu_);
    if (arming && !relist_) children_watched_ = true;  // unless it fired already, or the session changed
    return true;
  }
  if (s.code() != ErrorCode::kNotFound) {
    log::Warn(kComponent, "listing members failed; keeping the pool").kv("path", options_.path).kv("err", s.ToString());
    return false;
  }
  // The path does not exist (yet): no members. Wait for it to appear.
  children->clear();
  zk::Client::Watch exists;
  {
    MutexLock lock(&mu_);
    if (!exists_watched_) exists = [this] {
      {
        MutexLock l(&mu_);
        exists_watched_ = false;
      }
      Wake();
    };
  }
  if (exists) {
    Status e = session_.Exists(options_.path, nullptr, std::move(exists));
    MutexLock lock(&mu_);
    if (e.ok()) {  // created between the two calls: list again
      relist_ = true;
      return false;
    }
    if (e.code() != ErrorCode::kNotFound) {
      log::Warn(kComponent, "exists failed").kv("path", options_.path).kv("err", e.ToString());
      return false;
    }
    if (!relist_) exists_watched_ = true;
  }
  log::Info(kComponent, "membership path does not exist yet; waiting").kv("path", options_.path);
  return true;
}

void MemberRegistry::Read(Batch* batch) {
  uint64_t epoch;
  {
    MutexLock lock(&mu_);
    epoch = epoch_;
  }
  std::vector<std::string> paths;
  std::vector<zk::Client::Watch> watches;
  paths.reserve(batch->keys.size());
  watches.reserve(batch->keys.size());
  for (const auto& key : batch->keys) {
    paths.push_back(options_.path + "/" + key);
    watches.emplace_back([this, key] { OnMemberChanged(key); });
  }
  batch->results = session_.GetMany(paths, std::move(watches));
  MutexLock lock(&mu_);
  if (epoch != epoch_) return;  // the session changed: those watches are gone
  for (size_t i = 0; i < batch->keys.size(); ++i) {
    const std::string& key = batch->keys[i];
    // A watch that fired already put the key in changed_: it is read again.
    if (batch->results[i].status.ok() && !changed_.count(key)) data_watched_.insert(key);
  }
}

void MemberRegistry::ApplyBatch(const Batch& batch) {
  MutexLock update(&update_mu_);
  std::map<std::string, MemberRecord> next;
  if (batch.listed) {
    const std::set<std::string> listed(batch.children.begin(), batch.children.end());
    for (const auto& key : listed) {
      if (auto it = current_.find(key); it != current_.end()) next.emplace(key, it->second);
    }
    // Forget invalid records whose znodes are gone, so a new one is counted again.
    std::erase_if(invalid_, [&](const auto& entry) { return !listed.count(entry.first); });
  } else {
    next = current_;
  }
  int failed = 0;
  bool relist = false;
  for (size_t i = 0; i < batch.keys.size(); ++i) {
    const std::string& key = batch.keys[i];
    MemberRecord rec;
    bool keep = false;
    if (DecodeLocked(key, batch.results[i], &rec, &keep)) {
      next[key] = std::move(rec);
    } else if (!batch.listed && batch.results[i].status.code() == ErrorCode::kNotFound) {
      // Only a listing removes members: its data watch can fire after a
      // listing that found the whole path empty and kept the pool (a
      // reconnection delivers them late), and must not empty it behind
      // that rule's back.
      relist = true;
    } else if (keep) {
      if (failed++ == 0)
        log::Warn(kComponent, "reading member failed").kv("path", options_.path + "/" + key)
            .kv("err", batch.results[i].status.ToString());
    } else {
      next.erase(key);
    }
  }
  if (failed > 1) log::Warn(kComponent, "reading members failed; keeping what was known").kv("count", failed);
  // ZooKeeper never empties a pool that has members, as SmartStack's synapse
  // does (use_previous_backends): the last pool stays, its members still
  // health-checked. A wiped path or a wrong ensemble looks like that, and so
  // does a ZooKeeper that stalled past the session timeout: the members'
  // sessions expire one after another, so listings see the pool shrink to
  // one and then to none (or list members whose znodes are gone by the time
  // they are read), while every member still serves and re-registers a
  // moment later.
  if (next.empty() && !current_.empty()) {
    log::Warn(kComponent, "no member left in ZooKeeper; keeping the last pool")
        .kv("path", options_.path)
        .kv("members", current_.size());
  } else {
    ApplyLocked(std::move(next));
  }
  if (batch.listed) {
    MutexLock lock(&mu_);
    source_ = "zookeeper";
    synced_ = true;
  }
  if (relist) Wake();
}

bool MemberRegistry::DecodeLocked(const std::string& key, const zk::GetResult& got, MemberRecord* out, bool* keep) {
  if (got.status.code() == ErrorCode::kNotFound) {  // deleted between list and read: not an error
    invalid_.erase(key);
    return false;
  }
  if (!got.status.ok()) {
    *keep = true;  // keep what we had for it, if anything
    return false;
  }
  if (Status d = serverset::Decode(got.data, &out->member); !d.ok()) {
    auto [it, fresh] = invalid_.emplace(key, got.data);
    if (fresh || it->second != got.data) {
      it->second = got.data;
      log::Warn(kComponent, "invalid member ignored").kv("path", options_.path + "/" + key).kv("err", d.message());
      if (metrics_) metrics_->invalid_members.Increment();
    }
    return false;
  }
  invalid_.erase(key);
  out->key = key;
  return true;
}

void MemberRegistry::ApplyLocked(std::map<std::string, MemberRecord> next) {
  std::vector<MemberRecord> added;
  std::vector<std::string> removed;
  for (const auto& [key, rec] : current_) {
    auto it = next.find(key);
    if (it == next.end()) {
      removed.push_back(key);
    } else if (!(it->second == rec)) {
      removed.push_back(key);
      added.push_back(it->second);
    }
  }
  for (const auto& [key, rec] : next) {
    if (!current_.count(key)) added.push_back(rec);
  }
  if (added.empty() && removed.empty()) return;
  current_ = std::move(next);
  members_ = current_.size();
  listener_.OnMembershipUpdate(added, removed);
  if (state_writer_) {
    std::vector<MemberRecord> all;
    all.reserve(current_.size());
    for (const auto& [key, rec] : current_) all.push_back(rec);
    state_writer_->Save(std::move(all));
  }
}

}  // namespace webtier::balancer
