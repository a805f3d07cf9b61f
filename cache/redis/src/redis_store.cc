// cache::Store on Redis. hiredis itself is wrapped in hiredis_conn.h; this
// file is the pool, the master it follows, and the Store commands.
#include "webtier/cache/redis_store.h"

#include <deque>
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
  return {.connect_timeout = o.connect_timeout,
          .command_timeout = o.command_timeout,
          .user = o.user,
          .password = o.password};
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

Status RedisStore::Exchange(const std::vector<hiredis::Argv>& argvs, std::vector<Reply>* replies) {
  std::unique_ptr<hiredis::Connection> conn;
  for (int attempt = 0;; ++attempt) {
    bool reused = false;
    if (Status s = Acquire(&conn, &reused); !s.ok()) return s;
    Status s = hiredis::Pipeline(*conn, argvs, replies);
    if (s.ok()) break;
    master_->Suspect(conn->generation);  // conn is broken: not returned
    // A pooled connection that was closed under us (Redis restarted, idle
    // timeout): its siblings are as dead as it is. Drop them all and retry
    // once on a fresh connection. Never after a timeout: that would double
    // the time a stalled server costs.
    if (!reused || attempt > 0 || s.code() != ErrorCode::kConnectionLoss) return s;
    DropIdle();
  }
  for (const Reply& r : *replies) {
    if (r.type != Reply::Type::kError) continue;
    Status s = hiredis::FromErrorReply(r, "redis " + std::string(argvs.front()[0]));
    if (s.code() == ErrorCode::kUnavailable) {
      // READONLY: this master was demoted under us (and its siblings with it).
      master_->Suspect(conn->generation);
      DropIdle();
      return s;
    }
  }
  Release(std::move(conn));
  return Status::Ok();
}

Status RedisStore::Command(const hiredis::Argv& argv, Reply* reply) {
  std::vector<Reply> replies;
  if (Status s = Exchange({argv}, &replies); !s.ok()) return s;
  *reply = std::move(replies.front());
  if (reply->type != Reply::Type::kError) return Status::Ok();
  return hiredis::FromErrorReply(*reply, "redis " + std::string(argv[0]));
}

namespace {

// An expiry as PX takes it: whole milliseconds, at least 1.
std::string Millis(std::chrono::milliseconds ttl) { return std::to_string(ttl.count() > 0 ? ttl.count() : 1); }

// An op's command: views of the op's own strings (and of `numbers`, whose
// elements never move). Unlock deletes the lock only while
// it holds the token; AddToSet never shortens the set's expiry. Both are Lua
// (any Redis since 2.6; PEXPIRE's NX and GT would need 7.0).
hiredis::Argv ArgvFor(const StoreOp& op, std::deque<std::string>* numbers) {
  static constexpr std::string_view kUnlock =
      "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";
  static constexpr std::string_view kAddToSet =
      "redis.call('sadd', KEYS[1], ARGV[1]) "
      "if redis.call('pttl', KEYS[1]) < tonumber(ARGV[2]) then redis.call('pexpire', KEYS[1], ARGV[2]) end "
      "return 1";
  switch (op.kind) {
    case StoreOp::Kind::kGet: return {"GET", op.key};
    case StoreOp::Kind::kPut: return {"SET", op.key, op.value, "PX", numbers->emplace_back(Millis(op.ttl))};
    case StoreOp::Kind::kTryLock:
      return {"SET", op.key, op.value, "NX", "PX", numbers->emplace_back(Millis(op.ttl))};
    case StoreOp::Kind::kUnlock: return {"EVAL", kUnlock, "1", op.key, op.value};
    case StoreOp::Kind::kAddToSet:
      return {"EVAL", kAddToSet, "1", op.key, op.value, numbers->emplace_back(Millis(op.ttl))};
  }
  return {"PING"};
}

// What `reply` says of `op`: its status, value and lock.
void Interpret(Reply& reply, StoreOp* op) {
  static constexpr std::string_view kNames[] = {"redis GET", "redis SET", "redis SET NX", "redis unlock",
                                                "redis add to set"};
  op->status = hiredis::FromErrorReply(reply, kNames[static_cast<int>(op->kind)]);
  if (!op->status.ok()) return;
  switch (op->kind) {
    case StoreOp::Kind::kGet:
      if (reply.type == Reply::Type::kNil) {
        op->status = Status(ErrorCode::kNotFound, op->key);
      } else if (reply.type != Reply::Type::kString) {
        op->status = Status(ErrorCode::kInternal, "redis GET: unexpected reply type");
      } else {
        op->result = std::move(reply.str);
      }
      break;
    case StoreOp::Kind::kTryLock:
      op->acquired = reply.type == Reply::Type::kStatus;  // "OK"; nil when someone holds it
      break;
    case StoreOp::Kind::kPut:
    case StoreOp::Kind::kUnlock:
    case StoreOp::Kind::kAddToSet:
      break;
  }
}

}  // namespace

Status RedisStore::Run(std::vector<StoreOp>* ops) {
  if (ops->empty()) return Status::Ok();
  std::deque<std::string> numbers;
  std::vector<hiredis::Argv> argvs;
  argvs.reserve(ops->size());
  for (const StoreOp& op : *ops) argvs.push_back(ArgvFor(op, &numbers));
  std::vector<Reply> replies;
  if (Status s = Exchange(argvs, &replies); !s.ok()) return s;
  for (size_t i = 0; i < ops->size(); ++i) Interpret(replies[i], &(*ops)[i]);
  return Status::Ok();
}

Status RedisStore::RunOne(StoreOp op, StoreOp* done) {
  std::vector<StoreOp> ops;
  ops.push_back(std::move(op));
  if (Status s = Run(&ops); !s.ok()) return s;
  *done = std::move(ops.front());
  return done->status;
}

Status RedisStore::Get(const std::string& key, std::string* value) {
  StoreOp done;
  if (Status s = RunOne(StoreOp::Get(key), &done); !s.ok()) return s;
  *value = std::move(done.result);
  return Status::Ok();
}

Status RedisStore::Put(const std::string& key, const std::string& value, std::chrono::milliseconds ttl) {
  StoreOp done;
  return RunOne(StoreOp::Put(key, value, ttl), &done);
}

Status RedisStore::Delete(const std::string& key) {
  Reply r;
  return Command({"DEL", key}, &r);
}

Status RedisStore::TryLock(const std::string& key, const std::string& token, std::chrono::milliseconds ttl,
                           bool* acquired) {
  StoreOp done;
  Status s = RunOne(StoreOp::TryLock(key, token, ttl), &done);
  *acquired = s.ok() && done.acquired;
  return s;
}

Status RedisStore::GetOrLock(const std::string& key, const std::string& lock_key, const std::string& token,
                             std::chrono::milliseconds ttl, std::string* value, bool* acquired) {
  // The entry as a bulk string; else 1 when the lock was taken, 0 when someone holds it.
  static constexpr std::string_view kScript =
      "local v = redis.call('get', KEYS[1]) if v then return v end "
      "if redis.call('set', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end return 0";
  *acquired = false;
  Reply r;
  if (Status s = Command({"EVAL", kScript, "2", key, lock_key, token, Millis(ttl)}, &r); !s.ok()) return s;
  if (r.type == Reply::Type::kString) {
    *value = std::move(r.str);
    return Status::Ok();
  }
  if (r.type != Reply::Type::kInteger) return Status(ErrorCode::kInternal, "redis get-or-lock: unexpected reply type");
  *acquired = r.integer == 1;
  return Status(ErrorCode::kNotFound, key);
}

Status RedisStore::Unlock(const std::string& key, const std::string& token) {
  StoreOp done;
  return RunOne(StoreOp::Unlock(key, token), &done);
}

Status RedisStore::Publish(const std::string& channel, const std::string& message) {
  Reply r;
  return Command({"PUBLISH", channel, message}, &r);
}

Status RedisStore::AddToSet(const std::string& key, const std::string& member, std::chrono::milliseconds ttl) {
  StoreOp done;
  return RunOne(StoreOp::AddToSet(key, member, ttl), &done);
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
  // The first failure in a row is a warning (a wrong password or an ACL
  // user without the channel never subscribes at all); the retries after it
  // are debug lines, one every retry interval.
  bool failing = false;
  while (!stop_.load()) {
    Status s = Listen();
    const bool was_subscribed = subscribed_.exchange(false);
    if (was_subscribed && on_state_) on_state_(false);
    if (stop_.load()) return;
    if (s.ok()) continue;  // the master changed: subscribe on the new one at once
    if (was_subscribed) failing = false;
    if (!failing) log::Warn("redis", "purge channel: cannot subscribe; retrying").kv("err", s.ToString());
    else log::Debug("redis", "purge channel disconnected").kv("err", s.ToString());
    failing = true;
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
