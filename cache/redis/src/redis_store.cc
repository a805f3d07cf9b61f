// cache::Store on Redis. hiredis itself is wrapped in hiredis_conn.h; this
// file is the pool, the master it follows, and the Store commands.
#include "webtier/cache/redis_store.h"

#include <openssl/sha.h>

#include <cstdio>
#include <deque>
#include <random>
#include <thread>

#include "hiredis_conn.h"
#include "webtier/cache/cache_key.h"
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

// A Lua script, run by EVALSHA: Redis keeps compiled scripts by their SHA-1,
// so each call sends 40 bytes instead of the body and Redis hashes nothing.
// A server that has not seen it (restarted, failed over, SCRIPT FLUSH)
// answers NOSCRIPT; Exchange then sends that command again with EVAL, which
// runs it and teaches the server the script.
class LuaScript {
 public:
  explicit LuaScript(std::string_view body) : body_(body), sha_(Sha1Hex(body)) {}
  std::string_view body() const { return body_; }
  std::string_view sha() const { return sha_; }

 private:
  static std::string Sha1Hex(std::string_view body) {
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1(reinterpret_cast<const unsigned char*>(body.data()), body.size(), digest);
    static constexpr char kHex[] = "0123456789abcdef";
    std::string hex;
    for (unsigned char b : digest) {
      hex.push_back(kHex[b >> 4]);
      hex.push_back(kHex[b & 15]);
    }
    return hex;
  }

  const std::string_view body_;
  const std::string sha_;
};

// Every script the store runs (Lua: any Redis since 2.6). Unlock deletes
// the lock only while it holds the token.
const LuaScript kUnlock(
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end");
// A fill's writes, which a purge must not split (FillWrite). The value is
// not passed to Lua (copying a body in and out of it costs more than all
// the rest): the same pipeline first SETs it under a staging key of its own,
// which this script renames into place, or deletes when fenced off. KEYS: the
// staging key, the entries, the indexes, the purge marks, then the lock when
// ARGV[7] (its token) is given; ARGV: how many entries, indexes and marks,
// the fill's purge sequence, the expiry, the index member (numbers go to
// Redis as the strings they came as: a Lua number costs a printf). An index's
// expiry is never shortened (PEXPIRE's GT would need Redis 7.0). The lock is
// released either way; 1 when written, 0 when a mark fenced it off (an
// error when the staging key is missing: its SET failed).
const LuaScript kPutFill(
    "local ne, ni, nm = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]) "
    "local since, ttl, staging = tonumber(ARGV[4]), tonumber(ARGV[5]), KEYS[1] "
    "if ARGV[7] then local l = KEYS[ne + ni + nm + 2] "
    "if redis.call('get', l) == ARGV[7] then redis.call('del', l) end end "
    "for i = ne + ni + 2, ne + ni + nm + 1 do local m = redis.call('get', KEYS[i]) "
    "if m and (tonumber(m) or 0) > since then redis.call('del', staging) return 0 end end "
    "for i = 3, ne + 1 do redis.call('set', KEYS[i], redis.call('get', staging), 'PX', ARGV[5]) end "
    "redis.call('rename', staging, KEYS[2]) "
    "for i = ne + 2, ne + ni + 1 do redis.call('sadd', KEYS[i], ARGV[6]) "
    "if redis.call('pttl', KEYS[i]) < ttl then redis.call('pexpire', KEYS[i], ARGV[5]) end end "
    "return 1");
// The entry as a bulk string; else the purge sequence times two, plus one
// when the lock was taken (an integer: cheaper for Redis than a table).
const LuaScript kGetOrLock(
    "local v = redis.call('get', KEYS[1]) if v then return v end "
    "local seq = tonumber(redis.call('get', KEYS[3]) or '0') * 2 "
    "if redis.call('set', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return seq + 1 end return seq");
const LuaScript kMarkPurged(
    "local seq = redis.call('incr', KEYS[1]) "
    "for i = 2, #KEYS do redis.call('set', KEYS[i], seq, 'PX', ARGV[1]) end return seq");
// One round trip and atomic: the members come back joined by newlines.
const LuaScript kTakeSet(
    "local m = redis.call('smembers', KEYS[1]) redis.call('del', KEYS[1]) return table.concat(m, '\\n')");

// The body of the script whose SHA-1 is `sha`; empty when none is.
std::string_view ScriptBody(std::string_view sha) {
  for (const LuaScript* s : {&kUnlock, &kPutFill, &kGetOrLock, &kMarkPurged, &kTakeSet}) {
    if (s->sha() == sha) return s->body();
  }
  return {};
}

bool IsNoScript(const Reply& r) { return r.type == Reply::Type::kError && r.str.rfind("NOSCRIPT", 0) == 0; }

}  // namespace

RedisStore::RedisStore(RedisOptions options)
    : options_(std::move(options)), master_(MasterOf(options_)), staging_salt_(NewSalt()) {}

uint64_t RedisStore::NewSalt() {
  std::random_device random;
  return (uint64_t{random()} << 32) | random();
}

std::string RedisStore::StagingKey() {
  char key[64];
  std::snprintf(key, sizeof key, "webtier:staging:%016llx:%llu", static_cast<unsigned long long>(staging_salt_),
                static_cast<unsigned long long>(staging_seq_.fetch_add(1, std::memory_order_relaxed)));
  return key;
}

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
  if (Status s = RetryUnknownScripts(*conn, argvs, replies); !s.ok()) {
    master_->Suspect(conn->generation);
    return s;
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

Status RedisStore::RetryUnknownScripts(hiredis::Connection& conn, const std::vector<hiredis::Argv>& argvs,
                                       std::vector<Reply>* replies) {
  // A NOSCRIPT command did not run; the ones after it did. Every batch this
  // store sends puts nothing after a script that depends on it, so running
  // the unknown ones again now, in order, is what the batch meant.
  std::vector<size_t> unknown;
  std::vector<hiredis::Argv> again;
  for (size_t i = 0; i < replies->size() && i < argvs.size(); ++i) {
    if (!IsNoScript((*replies)[i]) || argvs[i].size() < 2 || argvs[i][0] != "EVALSHA") continue;
    std::string_view body = ScriptBody(argvs[i][1]);
    if (body.empty()) continue;
    hiredis::Argv argv = argvs[i];
    argv[0] = "EVAL";
    argv[1] = body;
    unknown.push_back(i);
    again.push_back(std::move(argv));
  }
  if (unknown.empty()) return Status::Ok();
  std::vector<Reply> answers;
  if (Status s = hiredis::Pipeline(conn, again, &answers); !s.ok()) return s;
  for (size_t j = 0; j < unknown.size(); ++j) (*replies)[unknown[j]] = std::move(answers[j]);
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
// elements never move). A kPutFill's value goes under `staging` first (Run).
hiredis::Argv ArgvFor(const StoreOp& op, std::string_view staging, std::deque<std::string>* numbers) {
  switch (op.kind) {
    case StoreOp::Kind::kGet: return {"GET", op.key};
    case StoreOp::Kind::kPut: return {"SET", op.key, op.value, "PX", numbers->emplace_back(Millis(op.ttl))};
    case StoreOp::Kind::kTryLock:
      return {"SET", op.key, op.value, "NX", "PX", numbers->emplace_back(Millis(op.ttl))};
    case StoreOp::Kind::kUnlock: return {"EVALSHA", kUnlock.sha(), "1", op.key, op.value};
    case StoreOp::Kind::kPutFill: {  // after the SET of op.fill.value under `staging` (see Run)
      const FillWrite& w = op.fill;
      const bool unlock = !w.lock_key.empty();
      const size_t keys = 1 + w.entries.size() + w.indexes.size() + w.marks.size() + (unlock ? 1 : 0);
      hiredis::Argv argv = {"EVALSHA", kPutFill.sha(), numbers->emplace_back(std::to_string(keys)), staging};
      for (const auto& k : w.entries) argv.emplace_back(k);
      for (const auto& k : w.indexes) argv.emplace_back(k);
      for (const auto& k : w.marks) argv.emplace_back(k);
      if (unlock) argv.emplace_back(w.lock_key);
      argv.emplace_back(numbers->emplace_back(std::to_string(w.entries.size())));
      argv.emplace_back(numbers->emplace_back(std::to_string(w.indexes.size())));
      argv.emplace_back(numbers->emplace_back(std::to_string(w.marks.size())));
      argv.emplace_back(numbers->emplace_back(std::to_string(w.since)));
      argv.emplace_back(numbers->emplace_back(Millis(w.ttl)));
      argv.emplace_back(w.member);
      if (unlock) argv.emplace_back(w.token);
      return argv;
    }
  }
  return {"PING"};
}

// What `reply` says of `op`: its status, value and lock.
void Interpret(Reply& reply, StoreOp* op) {
  static constexpr std::string_view kNames[] = {"redis GET", "redis SET", "redis SET NX", "redis unlock",
                                                "redis fill write"};
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
    case StoreOp::Kind::kPutFill:
      op->written = reply.type == Reply::Type::kInteger && reply.integer == 1;
      break;
    case StoreOp::Kind::kPut:
    case StoreOp::Kind::kUnlock:
      break;
  }
}

}  // namespace

Status RedisStore::Run(std::vector<StoreOp>* ops) {
  if (ops->empty()) return Status::Ok();
  std::deque<std::string> numbers;
  std::vector<hiredis::Argv> argvs;
  argvs.reserve(ops->size() + 1);
  std::vector<size_t> answer(ops->size());  // which reply answers each op
  for (size_t i = 0; i < ops->size(); ++i) {
    const StoreOp& op = (*ops)[i];
    std::string_view staging;
    if (op.kind == StoreOp::Kind::kPutFill) {
      staging = numbers.emplace_back(StagingKey());
      argvs.push_back({"SET", staging, op.fill.value, "PX", numbers.emplace_back(Millis(op.fill.ttl))});
    }
    argvs.push_back(ArgvFor(op, staging, &numbers));
    answer[i] = argvs.size() - 1;
  }
  std::vector<Reply> replies;
  if (Status s = Exchange(argvs, &replies); !s.ok()) return s;
  for (size_t i = 0; i < ops->size(); ++i) Interpret(replies[answer[i]], &(*ops)[i]);
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
                             std::chrono::milliseconds ttl, std::string* value, bool* acquired, uint64_t* purge_seq) {
  *acquired = false;
  *purge_seq = 0;
  Reply r;
  if (Status s = Command({"EVALSHA", kGetOrLock.sha(), "3", key, lock_key, kPurgeSeqKey, token, Millis(ttl)}, &r); !s.ok())
    return s;
  if (r.type == Reply::Type::kString) {
    *value = std::move(r.str);
    return Status::Ok();
  }
  if (r.type != Reply::Type::kInteger || r.integer < 0) {
    return Status(ErrorCode::kInternal, "redis get-or-lock: unexpected reply type");
  }
  *acquired = (r.integer & 1) != 0;
  *purge_seq = static_cast<uint64_t>(r.integer) >> 1;
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

Status RedisStore::MarkPurged(const std::vector<std::string>& marks, std::chrono::milliseconds ttl) {
  const std::string count = std::to_string(marks.size() + 1);
  const std::string millis = Millis(ttl);
  hiredis::Argv argv = {"EVALSHA", kMarkPurged.sha(), count, kPurgeSeqKey};
  for (const auto& m : marks) argv.emplace_back(m);
  argv.emplace_back(millis);
  Reply r;
  return Command(argv, &r);
}

Status RedisStore::PutFill(const FillWrite& write, bool* written) {
  StoreOp done;
  Status s = RunOne(StoreOp::PutFill(write), &done);
  *written = s.ok() && done.written;
  return s;
}

Status RedisStore::TakeSet(const std::string& key, std::vector<std::string>* members) {
  Reply r;
  if (Status s = Command({"EVALSHA", kTakeSet.sha(), "1", key}, &r); !s.ok()) return s;
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
