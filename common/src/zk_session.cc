// ZooKeeper session: the C client's multi-threaded handle behind a small
// synchronous API, with every watcher event funnelled onto one event thread.
//
// Threading: the C client calls OnWatcherEvent on its completion thread, where
// synchronous calls would deadlock and zookeeper_close is forbidden. So that
// function only queues the event; the session's own event thread handles
// state changes (including closing and replacing an expired handle), runs the
// listeners and fires the one-shot watches.
#include "webtier/common/zk_session.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <zookeeper/zookeeper.h>

#include <atomic>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "webtier/common/log.h"
#include "webtier/common/mutex.h"

namespace webtier::zk {

Status FromZkCode(int rc, std::string_view what) {
  if (rc == ZOK) return Status::Ok();
  std::string msg = std::string(what) + ": " + zerror(rc);
  switch (rc) {
    case ZNONODE: return Status(ErrorCode::kNotFound, msg);
    case ZNODEEXISTS: return Status(ErrorCode::kAlreadyExists, msg);
    case ZCONNECTIONLOSS:
    case ZINVALIDSTATE:
    case ZCLOSING: return Status(ErrorCode::kConnectionLoss, msg);
    case ZSESSIONEXPIRED: return Status(ErrorCode::kSessionExpired, msg);
    case ZOPERATIONTIMEOUT: return Status(ErrorCode::kTimeout, msg);
    case ZBADARGUMENTS:
    case ZBADVERSION:
    case ZINVALIDACL:
    case ZNOCHILDRENFOREPHEMERALS:
    case ZNOTEMPTY: return Status(ErrorCode::kInvalidArgument, msg);
    default: return Status(ErrorCode::kInternal, msg);
  }
}

namespace {

// The C client's own log lines are multi-line and noisy (every failed connect
// attempt); keep them at debug level and log state changes ourselves.
void ZkClientLog(const char* message) { log::Debug("zkclient", message); }

std::once_flag g_zk_log_once;

}  // namespace

struct Session::Impl {
  // Handed to the C client as the watcher context of one handle.
  struct HandleTag {
    Impl* impl;
    uint64_t generation;
  };

  explicit Impl(Options o) : options(std::move(o)) { BuildAcl(); }

  Options options;

  // The ACL every Create sets (see Options::digest_auth). `acl_ids` owns the
  // strings `acl_entries` points into; both are fixed after construction.
  std::vector<std::pair<std::string, std::string>> acl_ids;  // scheme, id
  std::vector<ACL> acl_entries;
  ACL_vector acl{};
  // Znodes of audit_path already reported as open (event thread only).
  std::set<std::string> audited_open;

  void BuildAcl() {
    if (options.digest_auth.empty()) return;
    // The creator's authenticated identity (the "auth" scheme, as
    // ZOO_CREATOR_ALL_ACL), readers without credentials, then the admins.
    acl_ids.emplace_back("auth", "");
    acl_ids.emplace_back("world", "anyone");
    for (const auto& admin : options.admin_digests) acl_ids.emplace_back("digest", admin);
    for (size_t i = 0; i < acl_ids.size(); ++i) {
      const int32_t perms = i == 1 ? ZOO_PERM_READ : ZOO_PERM_ALL;
      acl_entries.push_back(ACL{perms, Id{acl_ids[i].first.data(), acl_ids[i].second.data()}});
    }
    acl.count = static_cast<int32_t>(acl_entries.size());
    acl.data = acl_entries.data();
  }

  const ACL_vector* CreateAcl() const { return options.digest_auth.empty() ? &ZOO_OPEN_ACL_UNSAFE : &acl; }

  // The handle. Operations hold it shared; replacing it (expiry, Close) takes it unique.
  mutable SharedMutex handle_mu;
  zhandle_t* zh WEBTIER_GUARDED_BY(handle_mu) = nullptr;
  std::unique_ptr<HandleTag> tag WEBTIER_GUARDED_BY(handle_mu);  // outlives zh
  uint64_t generation WEBTIER_GUARDED_BY(handle_mu) = 0;         // bumped whenever zh is replaced
  bool started WEBTIER_GUARDED_BY(handle_mu) = false;            // set by the first Start()

  std::atomic<bool> is_connected{false};
  std::atomic<int64_t> current_session{0};
  std::atomic<int> negotiated_timeout{0};
  int64_t last_session = 0;  // event thread only

  std::vector<Listener> listeners;  // fixed after Start()

  // One-shot watches by path. Ids let a failed registration remove its own entry.
  using WatchTable = std::map<std::string, std::vector<std::pair<uint64_t, Watch>>>;
  enum class Watches { kData, kChild };  // names a table without touching it
  Mutex watch_mu;
  uint64_t next_watch_id WEBTIER_GUARDED_BY(watch_mu) = 1;
  WatchTable data_watches WEBTIER_GUARDED_BY(watch_mu);
  WatchTable child_watches WEBTIER_GUARDED_BY(watch_mu);

  WatchTable& TableLocked(Watches which) WEBTIER_REQUIRES(watch_mu) {
    return which == Watches::kData ? data_watches : child_watches;
  }

  // Event thread and its queue.
  Mutex queue_mu;
  CondVar queue_cv;
  std::deque<std::function<void()>> queue WEBTIER_GUARDED_BY(queue_mu);
  bool stopping WEBTIER_GUARDED_BY(queue_mu) = false;
  std::thread event_thread;

  static void OnWatcherEvent(zhandle_t*, int type, int state, const char* path, void* ctx) {
    auto* t = static_cast<HandleTag*>(ctx);
    std::string p = path != nullptr ? path : "";
    Impl* self = t->impl;
    uint64_t gen = t->generation;
    self->Post([self, gen, type, state, p] { self->HandleEvent(gen, type, state, p); });
  }

  void Post(std::function<void()> fn) WEBTIER_EXCLUDES(queue_mu) {
    {
      MutexLock l(&queue_mu);
      if (stopping) return;
      queue.push_back(std::move(fn));
    }
    queue_cv.Signal();
  }

  void RunEvents() WEBTIER_EXCLUDES(queue_mu) {
    for (;;) {
      std::function<void()> fn;
      {
        MutexLock l(&queue_mu);
        while (!stopping && queue.empty()) queue_cv.Wait(&queue_mu);
        if (stopping) return;
        fn = std::move(queue.front());
        queue.pop_front();
      }
      fn();
    }
  }

  // Creates a new handle; caller holds handle_mu uniquely.
  Status OpenHandleLocked() WEBTIER_REQUIRES(handle_mu) {
    ++generation;
    tag = std::make_unique<HandleTag>(HandleTag{this, generation});
    zh = zookeeper_init2(options.connect.c_str(), &Impl::OnWatcherEvent, options.session_timeout_ms,
                         nullptr, tag.get(), 0, &ZkClientLog);
    if (zh == nullptr) {
      return Status(ErrorCode::kInvalidArgument,
                    "zookeeper_init failed for '" + options.connect + "': " + std::strerror(errno));
    }
    // Before any operation can be queued: the C client keeps the credential
    // with the handle and sends it first on every (re)connection, so no
    // request of this handle ever reaches the server unauthenticated. A
    // handle replacing an expired one comes through here too.
    if (!options.digest_auth.empty()) {
      int rc = zoo_add_auth(zh, "digest", options.digest_auth.data(), static_cast<int>(options.digest_auth.size()),
                            nullptr, nullptr);
      if (rc != ZOK) {
        zookeeper_close(zh);
        zh = nullptr;
        return FromZkCode(rc, "add digest credential");  // the message never carries the credential
      }
    }
    return Status::Ok();
  }

  void Notify(Event e) {
    for (auto& l : listeners) l(e);
  }

  void FireWatches(Watches which, const std::string& path) WEBTIER_EXCLUDES(watch_mu) {
    std::vector<std::pair<uint64_t, Watch>> fired;
    {
      MutexLock l(&watch_mu);
      WatchTable& table = TableLocked(which);
      auto it = table.find(path);
      if (it == table.end()) return;
      fired = std::move(it->second);
      table.erase(it);
    }
    for (auto& [id, w] : fired) w();
  }

  void HandleEvent(uint64_t gen, int type, int state, const std::string& path) WEBTIER_EXCLUDES(handle_mu, watch_mu) {
    {
      ReaderLock l(&handle_mu);
      if (gen != generation || zh == nullptr) return;  // from a handle already replaced
    }
    if (type == ZOO_SESSION_EVENT) {
      HandleStateChange(state);
      return;
    }
    if (type == ZOO_CHILD_EVENT) {
      FireWatches(Watches::kChild, path);
    } else if (type == ZOO_CREATED_EVENT || type == ZOO_CHANGED_EVENT) {
      FireWatches(Watches::kData, path);
    } else if (type == ZOO_DELETED_EVENT) {
      FireWatches(Watches::kData, path);
      FireWatches(Watches::kChild, path);
    }
  }

  void HandleStateChange(int state) WEBTIER_EXCLUDES(handle_mu, watch_mu) {
    if (state == ZOO_CONNECTED_STATE) {
      int64_t sid = 0;
      {
        ReaderLock l(&handle_mu);
        if (zh == nullptr) return;  // closed since HandleEvent looked
        sid = zoo_client_id(zh)->client_id;
        negotiated_timeout.store(zoo_recv_timeout(zh));
      }
      if (is_connected.load() && sid == last_session) return;  // duplicate delivery
      is_connected.store(true);
      current_session.store(sid);
      bool fresh = sid != last_session;
      last_session = sid;
      log::Info(options.component, fresh ? "session started" : "reconnected, session kept")
          .kv("session", SessionHex(sid))
          .kv("server", ConnectedServerIp())
          .kv("timeout_ms", negotiated_timeout.load());
      Notify(fresh ? Event::kSessionStarted : Event::kReconnected);
      if (fresh) AuditPath();
    } else if (state == ZOO_CONNECTING_STATE || state == ZOO_ASSOCIATING_STATE) {
      if (!is_connected.exchange(false)) return;
      log::Warn(options.component, "connection lost, reconnecting").kv("session", SessionHex(last_session));
      Notify(Event::kDisconnected);
    } else if (state == ZOO_EXPIRED_SESSION_STATE) {
      is_connected.store(false);
      current_session.store(0);
      log::Warn(options.component, "session expired, opening a new one").kv("session", SessionHex(last_session));
      {
        MutexLock l(&watch_mu);
        data_watches.clear();
        child_watches.clear();
      }
      {
        WriterLock l(&handle_mu);
        if (zh == nullptr) return;  // Close() ran since HandleEvent looked: no new handle after it
        zookeeper_close(zh);  // safe: we are on our own thread, not the completion thread
        zh = nullptr;
        Status s = OpenHandleLocked();
        if (!s.ok()) log::Error(options.component, "cannot reopen handle").kv("err", s.ToString());
      }
      Notify(Event::kExpired);
    } else if (state == ZOO_AUTH_FAILED_STATE) {
      log::Error(options.component, "authentication failed");
    }
  }

  // Logs each znode of options.audit_path (the path, then its parents) that
  // anyone may change, once per process: such a znode was created before the
  // credential was in use, and ACLs are fixed at create time. Event thread.
  void AuditPath() WEBTIER_EXCLUDES(handle_mu) {
    if (options.digest_auth.empty() || options.audit_path.empty()) return;
    const std::string& path = options.audit_path;
    for (size_t end = path.size(); end > 0; end = path.rfind('/', end - 1)) {
      const std::string znode = path.substr(0, end);
      if (audited_open.count(znode)) continue;
      ACL_vector got{};
      struct Stat st{};
      int rc = WithHandle([&](zhandle_t* h) { return zoo_get_acl(h, znode.c_str(), &got, &st); });
      if (rc != ZOK) {
        if (rc != ZNONODE) log::Debug(options.component, "cannot read ACL").kv("znode", znode).kv("err", zerror(rc));
        continue;
      }
      bool open = false;
      for (int32_t i = 0; i < got.count; ++i) {
        const ACL& a = got.data[i];
        if (std::strcmp(a.id.scheme, "world") == 0 && (a.perms & ~ZOO_PERM_READ) != 0) open = true;
      }
      deallocate_ACL_vector(&got);
      if (!open) continue;
      audited_open.insert(znode);
      log::Warn(options.component, "znode writable by anyone (created without an ACL); restrict it with setAcl")
          .kv("znode", znode);
    }
  }

  static std::string SessionHex(int64_t sid) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(sid));
    return buf;
  }

  std::string ConnectedServerIp() const WEBTIER_EXCLUDES(handle_mu) {
    ReaderLock l(&handle_mu);
    if (zh == nullptr) return {};
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (zookeeper_get_connected_host(zh, reinterpret_cast<sockaddr*>(&ss), &len) == nullptr) return {};
    char buf[INET6_ADDRSTRLEN] = {};
    if (ss.ss_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr, buf, sizeof buf);
    } else if (ss.ss_family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr, buf, sizeof buf);
    }
    return buf;
  }

  uint64_t AddWatch(Watches which, const std::string& path, Watch w) WEBTIER_EXCLUDES(watch_mu) {
    MutexLock l(&watch_mu);
    uint64_t id = next_watch_id++;
    TableLocked(which)[path].emplace_back(id, std::move(w));
    return id;
  }

  void RemoveWatch(Watches which, const std::string& path, uint64_t id) WEBTIER_EXCLUDES(watch_mu) {
    MutexLock l(&watch_mu);
    WatchTable& table = TableLocked(which);
    auto it = table.find(path);
    if (it == table.end()) return;
    auto& v = it->second;
    for (auto w = v.begin(); w != v.end(); ++w) {
      if (w->first == id) { v.erase(w); break; }
    }
    if (v.empty()) table.erase(it);
  }

  // Runs `op(zh)` with the handle held shared; kConnectionLoss when not connected.
  template <typename Op>
  int WithHandle(Op op) WEBTIER_EXCLUDES(handle_mu) {
    if (!is_connected.load()) return ZCONNECTIONLOSS;
    ReaderLock l(&handle_mu);
    if (zh == nullptr) return ZCONNECTIONLOSS;
    return op(zh);
  }
};

Session::Session(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Session::~Session() { Close(); }

void Session::AddListener(Listener listener) { impl_->listeners.push_back(std::move(listener)); }

Status Session::Start() {
  std::call_once(g_zk_log_once, [] { zoo_set_debug_level(ZOO_LOG_LEVEL_WARN); });
  if (impl_->options.connect.empty()) return Status(ErrorCode::kInvalidArgument, "empty ZooKeeper connect string");
  {
    WriterLock l(&impl_->handle_mu);
    if (impl_->started) return Status::Ok();
    Status s = impl_->OpenHandleLocked();
    if (!s.ok()) return s;
    impl_->started = true;
  }
  impl_->event_thread = std::thread([this] { impl_->RunEvents(); });
  log::Info(impl_->options.component, "connecting").kv("zk", impl_->options.connect);
  return Status::Ok();
}

void Session::Close() {
  {
    WriterLock l(&impl_->handle_mu);
    if (impl_->zh != nullptr) {
      zookeeper_close(impl_->zh);
      impl_->zh = nullptr;
    }
    impl_->is_connected.store(false);
  }
  {
    MutexLock l(&impl_->queue_mu);
    impl_->stopping = true;
  }
  impl_->queue_cv.SignalAll();
  if (impl_->event_thread.joinable()) {
    if (impl_->event_thread.get_id() == std::this_thread::get_id()) impl_->event_thread.detach();
    else impl_->event_thread.join();
  }
}

bool Session::connected() const { return impl_->is_connected.load(); }
int64_t Session::session_id() const { return impl_->current_session.load(); }
std::string Session::ConnectedServerIp() const { return impl_->ConnectedServerIp(); }
int Session::negotiated_timeout_ms() const { return impl_->negotiated_timeout.load(); }

Status Session::Create(const std::string& path, std::string_view data, int flags, std::string* created_path) {
  std::string buf(path.size() + 32, '\0');
  int rc = impl_->WithHandle([&](zhandle_t* zh) {
    return zoo_create(zh, path.c_str(), data.data(), static_cast<int>(data.size()), impl_->CreateAcl(), flags,
                      buf.data(), static_cast<int>(buf.size()));
  });
  if (rc == ZOK && created_path != nullptr) *created_path = buf.c_str();
  return FromZkCode(rc, "create " + path);
}

Status Session::Delete(const std::string& path, int version) {
  int rc = impl_->WithHandle([&](zhandle_t* zh) { return zoo_delete(zh, path.c_str(), version); });
  return FromZkCode(rc, "delete " + path);
}

Status Session::Get(const std::string& path, std::string* data, NodeStat* stat, Watch watch) {
  uint64_t wid = watch ? impl_->AddWatch(Impl::Watches::kData, path, std::move(watch)) : 0;
  struct Stat st{};
  int rc = ZOK;
  for (int size = 16 * 1024;; size *= 4) {
    std::string buf(static_cast<size_t>(size), '\0');
    int len = size;
    rc = impl_->WithHandle(
        [&](zhandle_t* zh) { return zoo_get(zh, path.c_str(), wid != 0 ? 1 : 0, buf.data(), &len, &st); });
    if (rc != ZOK) break;
    if (st.dataLength <= size || size >= (4 << 20)) {
      if (data != nullptr) data->assign(buf.data(), len < 0 ? 0 : static_cast<size_t>(len));
      break;
    }
  }
  if (rc != ZOK && wid != 0) impl_->RemoveWatch(Impl::Watches::kData, path, wid);
  if (rc == ZOK && stat != nullptr) *stat = NodeStat{st.version, st.ephemeralOwner, st.numChildren};
  return FromZkCode(rc, "get " + path);
}

Status Session::Set(const std::string& path, std::string_view data, int version) {
  int rc = impl_->WithHandle([&](zhandle_t* zh) {
    return zoo_set(zh, path.c_str(), data.data(), static_cast<int>(data.size()), version);
  });
  return FromZkCode(rc, "set " + path);
}

Status Session::Exists(const std::string& path, NodeStat* stat, Watch watch) {
  uint64_t wid = watch ? impl_->AddWatch(Impl::Watches::kData, path, std::move(watch)) : 0;
  struct Stat st{};
  int rc = impl_->WithHandle([&](zhandle_t* zh) { return zoo_exists(zh, path.c_str(), wid != 0 ? 1 : 0, &st); });
  // An exists watch is set even when the node is missing (it fires on create).
  if (rc != ZOK && rc != ZNONODE && wid != 0) impl_->RemoveWatch(Impl::Watches::kData, path, wid);
  if (rc == ZOK && stat != nullptr) *stat = NodeStat{st.version, st.ephemeralOwner, st.numChildren};
  return FromZkCode(rc, "exists " + path);
}

Status Session::GetChildren(const std::string& path, std::vector<std::string>* children, Watch watch) {
  uint64_t wid = watch ? impl_->AddWatch(Impl::Watches::kChild, path, std::move(watch)) : 0;
  String_vector sv{};
  int rc = impl_->WithHandle(
      [&](zhandle_t* zh) { return zoo_get_children(zh, path.c_str(), wid != 0 ? 1 : 0, &sv); });
  if (rc == ZOK) {
    if (children != nullptr) {
      children->clear();
      for (int i = 0; i < sv.count; ++i) children->emplace_back(sv.data[i]);
    }
    deallocate_String_vector(&sv);
  } else if (wid != 0) {
    impl_->RemoveWatch(Impl::Watches::kChild, path, wid);
  }
  return FromZkCode(rc, "get_children " + path);
}

namespace {

// The answers of one GetMany, filled in by the completion thread.
struct GetBatch {
  GetBatch(size_t n, std::vector<GetResult>* results) : rc(n, ZOK), out(results) {}

  Mutex mu;
  CondVar cv;
  size_t pending WEBTIER_GUARDED_BY(mu) = 0;
  std::vector<int> rc WEBTIER_GUARDED_BY(mu);
  std::vector<GetResult>* const out WEBTIER_PT_GUARDED_BY(mu);
};

struct GetRequest {
  std::shared_ptr<GetBatch> batch;
  size_t index;
};

void OnGetDone(int rc, const char* value, int value_len, const struct Stat* st, const void* data) {
  std::unique_ptr<GetRequest> req(static_cast<GetRequest*>(const_cast<void*>(data)));
  GetBatch& b = *req->batch;
  MutexLock l(&b.mu);
  GetResult& r = (*b.out)[req->index];
  b.rc[req->index] = rc;
  if (rc == ZOK) {
    if (value != nullptr && value_len > 0) r.data.assign(value, static_cast<size_t>(value_len));
    if (st != nullptr) r.stat = NodeStat{st->version, st->ephemeralOwner, st->numChildren};
  }
  if (--b.pending == 0) b.cv.SignalAll();
}

}  // namespace

std::vector<GetResult> Session::GetMany(const std::vector<std::string>& paths, std::vector<Watch> watches) {
  std::vector<GetResult> out(paths.size());
  auto batch = std::make_shared<GetBatch>(paths.size(), &out);
  std::vector<uint64_t> wids(paths.size(), 0);
  for (size_t i = 0; i < paths.size(); ++i) {
    if (i < watches.size() && watches[i]) {
      wids[i] = impl_->AddWatch(Impl::Watches::kData, paths[i], std::move(watches[i]));
    }
    auto req = std::make_unique<GetRequest>(GetRequest{batch, i});
    {
      MutexLock l(&batch->mu);
      ++batch->pending;
    }
    int rc = impl_->WithHandle([&](zhandle_t* zh) {
      return zoo_aget(zh, paths[i].c_str(), wids[i] != 0 ? 1 : 0, &OnGetDone, req.get());
    });
    if (rc == ZOK) {
      req.release();  // owned by the completion now
    } else {
      MutexLock l(&batch->mu);
      --batch->pending;
      batch->rc[i] = rc;
    }
  }
  std::vector<int> rc;
  {
    MutexLock l(&batch->mu);
    while (batch->pending != 0) batch->cv.Wait(&batch->mu);
    rc = std::move(batch->rc);  // every completion has run: nothing writes it any more
  }
  for (size_t i = 0; i < paths.size(); ++i) {
    if (rc[i] != ZOK && wids[i] != 0) impl_->RemoveWatch(Impl::Watches::kData, paths[i], wids[i]);
    out[i].status = FromZkCode(rc[i], "get " + paths[i]);
  }
  return out;
}

}  // namespace webtier::zk
