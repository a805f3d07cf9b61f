// cache::Store on Redis. hiredis itself is wrapped in hiredis_conn.h; this
// file is the pool, the master it follows, and the Store commands.
#include "webtier/cache/redis_store.h"

#include <thread>

#include "hiredis_conn.h"
#include "webtier/common/log.h"

namespace webtier::cache {
namespace {

using hiredis::Reply;

std::shared_ptr<RedisMaster> MasterOf(const RedisOptions& o) {
  return o.master ? o.master : std::make_shared<FixedRedisMaster>(o.address);
}

hiredis::DialOptions DialFor(const RedisOptions& o) {
  return {.connect_timeout = o.connect_timeout, .command_timeout = o.command_timeout, .password = o.password};
}

}  // namespace

RedisStore::RedisStore(RedisOptions options) : options_(std::move(options)), master_(MasterOf(options_)) {}

RedisStore::~RedisStore() = default;

Status RedisStore::Acquire(std::unique_ptr<hiredis::Connection>* conn, bool* reused) {
  net::HostPort address;
  uint64_t generation = 0;
  if (Status s = master_->Current(&address, &generation); !s.ok()) return s;
  std::vector<std::unique_ptr<hiredis::Connection>> retired;  // an earlier master's, closed outside the lock
  {
    MutexLock lock(&mu_);
    while (!idle_.empty()) {
      std::unique_ptr<hiredis::Connection> c = std::move(idle_.back());
      idle_.pop_back();
      if (c->generation != generation) {
        retired.push_back(std::move(c));
        continue;
      }
      *conn = std::move(c);
      *reused = true;
      return Status::Ok();
    }
  }
  *reused = false;
  std::unique_ptr<hiredis::Connection> fresh;
  Status s = hiredis::Dial(address, DialFor(options_), &fresh);
  if (s.ok() && master_->VerifyRole()) s = hiredis::CheckIsMaster(*fresh, address);
  if (!s.ok()) {
    master_->Suspect(generation);
    return s;
  }
  fresh->generation = generation;
  *conn = std::move(fresh);
  return Status::Ok();
}

void RedisStore::Release(std::unique_ptr<hiredis::Connection> conn) {
  if (conn->broken()) return;  // dropped; the next caller reconnects
  MutexLock lock(&mu_);
  if (idle_.size() < options_.max_idle_connections) idle_.push_back(std::move(conn));
}

void RedisStore::DropIdle() {
  std::vector<std::unique_ptr<hiredis::Connection>> dead;
  MutexLock lock(&mu_);
  dead.swap(idle_);
}

Status RedisStore::Command(const std::vector<std::string>& argv, Reply* reply) {
  std::unique_ptr<hiredis::Connection> conn;
  for (int attempt = 0;; ++attempt) {
    bool reused = false;
    if (Status s = Acquire(&conn, &reused); !s.ok()) return s;
    Status s = hiredis::Command(*conn, argv, reply);
    if (s.ok()) break;
    master_->Suspect(conn->generation);  // conn is broken: not returned
    // A pooled connection that was closed under us (Redis restarted, idle
    // timeout): its siblings are as dead as it is. Drop them all and retry
    // once on a fresh connection. Never after a timeout: that would double
    // the time a stalled server costs.
    if (!reused || attempt > 0 || s.code() != ErrorCode::kConnectionLoss) return s;
    DropIdle();
  }
  Status s = hiredis::FromErrorReply(*reply, "redis " + argv[0]);
  if (s.code() == ErrorCode::kUnavailable) {
    // READONLY: this master was demoted under us (and its siblings with it).
    master_->Suspect(conn->generation);
    DropIdle();
    return s;
  }
  Release(std::move(conn));
  return s;
}

Status RedisStore::Get(const std::string& key, std::string* value) {
  Reply r;
  if (Status s = Command({"GET", key}, &r); !s.ok()) return s;
  if (r.type == Reply::Type::kNil) return Status(ErrorCode::kNotFound, key);
  if (r.type != Reply::Type::kString) return Status(ErrorCode::kInternal, "redis GET: unexpected reply type");
  *value = std::move(r.str);
  return Status::Ok();
}

Status RedisStore::Put(const std::string& key, const std::string& value, std::chrono::milliseconds ttl) {
  Reply r;
  return Command({"SET", key, value, "PX", std::to_string(ttl.count() > 0 ? ttl.count() : 1)}, &r);
}

Status RedisStore::Delete(const std::string& key) {
  Reply r;
  return Command({"DEL", key}, &r);
}

Status RedisStore::TryLock(const std::string& key, const std::string& token, std::chrono::milliseconds ttl,
                           bool* acquired) {
  Reply r;
  Status s = Command({"SET", key, token, "NX", "PX", std::to_string(ttl.count())}, &r);
  *acquired = s.ok() && r.type == Reply::Type::kStatus;  // "OK"; nil when someone holds it
  return s;
}

Status RedisStore::Unlock(const std::string& key, const std::string& token) {
  static const std::string kScript =
      "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";
  Reply r;
  return Command({"EVAL", kScript, "1", key, token}, &r);
}

Status RedisStore::Publish(const std::string& channel, const std::string& message) {
  Reply r;
  return Command({"PUBLISH", channel, message}, &r);
}

Status RedisStore::AddToSet(const std::string& key, const std::string& member, std::chrono::milliseconds ttl) {
  static const std::string kScript =
      "redis.call('sadd', KEYS[1], ARGV[1]) "
      "if redis.call('pttl', KEYS[1]) < tonumber(ARGV[2]) then redis.call('pexpire', KEYS[1], ARGV[2]) end "
      "return 1";
  Reply r;
  return Command({"EVAL", kScript, "1", key, member, std::to_string(ttl.count() > 0 ? ttl.count() : 1)}, &r);
}

Status RedisStore::TakeSet(const std::string& key, std::vector<std::string>* members) {
  // One round trip and atomic: the members come back joined by newlines.
  static const std::string kScript =
      "local m = redis.call('smembers', KEYS[1]) redis.call('del', KEYS[1]) return table.concat(m, '\\n')";
  Reply r;
  if (Status s = Command({"EVAL", kScript, "1", key}, &r); !s.ok()) return s;
  members->clear();
  std::string_view all = r.str;
  while (!all.empty()) {
    size_t nl = all.find('\n');
    members->emplace_back(all.substr(0, nl));
    if (nl == std::string_view::npos) break;
    all.remove_prefix(nl + 1);
  }
  return Status::Ok();
}

RedisSubscriber::RedisSubscriber(RedisOptions options, std::string channel,
                                 std::function<void(const std::string&)> on_message, std::chrono::milliseconds retry,
                                 std::function<void(bool)> on_state)
    : options_(std::move(options)),
      master_(MasterOf(options_)),
      channel_(std::move(channel)),
      on_message_(std::move(on_message)),
      retry_(retry),
      on_state_(std::move(on_state)),
      thread_([this] { Run(); }) {}

RedisSubscriber::~RedisSubscriber() {
  stop_.store(true);
  thread_.join();
}

void RedisSubscriber::Run() {
  while (!stop_.load()) {
    Status s = Listen();
    if (subscribed_.exchange(false) && on_state_) on_state_(false);
    if (stop_.load()) return;
    if (s.ok()) continue;  // the master changed: subscribe on the new one at once
    log::Debug("redis", "purge channel disconnected").kv("err", s.ToString());
    for (auto slept = std::chrono::milliseconds(0); slept < retry_ && !stop_.load(); slept += std::chrono::milliseconds(50)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
}

Status RedisSubscriber::Listen() {
  net::HostPort address;
  uint64_t generation = 0;
  if (Status s = master_->Current(&address, &generation); !s.ok()) return s;
  std::unique_ptr<hiredis::Connection> conn;
  if (Status s = hiredis::Dial(address, DialFor(options_), &conn); !s.ok()) {
    master_->Suspect(generation);
    return s;
  }
  // Until the master changes: then resubscribe on the new one.
  auto same_master = [&] {
    net::HostPort now;
    uint64_t g = 0;
    return master_->Current(&now, &g).ok() && g == generation;
  };
  return hiredis::Subscribe(
      *conn, channel_, stop_,
      [this] {
        subscribed_.store(true);
        if (on_state_) on_state_(true);
      },
      on_message_, same_master);
}

}  // namespace webtier::cache
