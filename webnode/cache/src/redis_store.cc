// cache::Store on Redis. hiredis errors are translated into Status here, and
// only here (FromContext / FromReply).
#include "webtier/cache/redis_store.h"

#include <hiredis/hiredis.h>

#include <poll.h>

#include <cerrno>
#include <thread>
#include <cstring>

#include "webtier/common/log.h"

namespace webtier::cache {
namespace {

timeval ToTimeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

// The one translation of a failed hiredis context into Status.
Status FromContext(const redisContext* ctx, std::string_view what) {
  std::string msg = std::string(what) + ": " + (ctx ? ctx->errstr : "out of memory");
  if (ctx == nullptr) return Status(ErrorCode::kInternal, msg);
  switch (ctx->err) {
    case REDIS_ERR_IO:
      if (errno == EAGAIN || errno == ETIMEDOUT || errno == EINPROGRESS) return Status(ErrorCode::kTimeout, msg);
      if (errno == ECONNREFUSED || errno == EHOSTUNREACH || errno == ENETUNREACH)
        return Status(ErrorCode::kUnavailable, msg);
      return Status(ErrorCode::kConnectionLoss, msg);
    case REDIS_ERR_EOF:
      return Status(ErrorCode::kConnectionLoss, msg);
    default:
      return Status(ErrorCode::kUnavailable, msg);
  }
}

}  // namespace

class RedisConnection {
 public:
  explicit RedisConnection(redisContext* ctx) : ctx_(ctx) {}
  ~RedisConnection() {
    if (ctx_ != nullptr) redisFree(ctx_);
  }
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  redisContext* get() const { return ctx_; }
  // After an I/O or protocol error hiredis cannot use the context again.
  bool broken() const { return ctx_ == nullptr || ctx_->err != 0; }

 private:
  redisContext* ctx_;
};

struct RedisStore::Reply {
  int type = 0;
  std::string str;
  long long integer = 0;
};

RedisStore::RedisStore(RedisOptions options) : options_(std::move(options)) {}

RedisStore::~RedisStore() = default;

Status RedisStore::Acquire(std::unique_ptr<RedisConnection>* conn, bool* reused) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!idle_.empty()) {
      *conn = std::move(idle_.back());
      idle_.pop_back();
      *reused = true;
      return Status::Ok();
    }
  }
  *reused = false;
  redisContext* ctx = redisConnectWithTimeout(options_.address.host.c_str(), options_.address.port,
                                              ToTimeval(options_.connect_timeout));
  auto fresh = std::make_unique<RedisConnection>(ctx);
  if (fresh->broken()) return FromContext(ctx, "redis connect " + options_.address.ToString());
  // Without a read/write timeout hiredis blocks forever on a stalled server.
  if (redisSetTimeout(ctx, ToTimeval(options_.command_timeout)) != REDIS_OK) {
    return FromContext(ctx, "redis set timeout");
  }
  if (!options_.password.empty()) {
    const char* argv[] = {"AUTH", options_.password.c_str()};
    const size_t lens[] = {4, options_.password.size()};
    auto* r = static_cast<redisReply*>(redisCommandArgv(ctx, 2, argv, lens));
    if (r == nullptr) return FromContext(ctx, "redis auth");
    bool ok = r->type != REDIS_REPLY_ERROR;
    std::string err = ok ? "" : std::string(r->str, r->len);
    freeReplyObject(r);
    if (!ok) return Status(ErrorCode::kUnavailable, "redis auth: " + err);
  }
  *conn = std::move(fresh);
  return Status::Ok();
}

void RedisStore::Release(std::unique_ptr<RedisConnection> conn) {
  if (conn->broken()) return;  // dropped; the next caller reconnects
  std::lock_guard<std::mutex> lock(mu_);
  if (idle_.size() < options_.max_idle_connections) idle_.push_back(std::move(conn));
}

void RedisStore::DropIdle() {
  std::vector<std::unique_ptr<RedisConnection>> dead;
  std::lock_guard<std::mutex> lock(mu_);
  dead.swap(idle_);
}

Status RedisStore::Command(const std::vector<std::string>& argv, Reply* reply) {
  std::vector<const char*> args;
  std::vector<size_t> lens;
  args.reserve(argv.size());
  lens.reserve(argv.size());
  for (const auto& a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  std::unique_ptr<RedisConnection> conn;
  redisReply* r = nullptr;
  for (int attempt = 0;; ++attempt) {
    bool reused = false;
    if (Status s = Acquire(&conn, &reused); !s.ok()) return s;
    r = static_cast<redisReply*>(
        redisCommandArgv(conn->get(), static_cast<int>(args.size()), args.data(), lens.data()));
    if (r != nullptr) break;
    Status s = FromContext(conn->get(), "redis " + argv[0]);  // conn is broken: not returned
    // A pooled connection that was closed under us (Redis restarted, idle
    // timeout): its siblings are as dead as it is. Drop them all and retry
    // once on a fresh connection. Never after a timeout: that would double
    // the time a stalled server costs.
    if (!reused || attempt > 0 || s.code() != ErrorCode::kConnectionLoss) return s;
    DropIdle();
  }
  reply->type = r->type;
  if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR) {
    reply->str.assign(r->str, r->len);
  } else if (r->type == REDIS_REPLY_INTEGER) {
    reply->integer = r->integer;
  }
  freeReplyObject(r);
  Release(std::move(conn));
  if (reply->type == REDIS_REPLY_ERROR) return Status(ErrorCode::kInternal, "redis " + argv[0] + ": " + reply->str);
  return Status::Ok();
}

Status RedisStore::Get(const std::string& key, std::string* value) {
  Reply r;
  if (Status s = Command({"GET", key}, &r); !s.ok()) return s;
  if (r.type == REDIS_REPLY_NIL) return Status(ErrorCode::kNotFound, key);
  if (r.type != REDIS_REPLY_STRING) return Status(ErrorCode::kInternal, "redis GET: unexpected reply type");
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
  *acquired = s.ok() && r.type == REDIS_REPLY_STATUS;  // "OK"; nil when someone holds it
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
                                 std::function<void(const std::string&)> on_message, std::chrono::milliseconds retry)
    : options_(std::move(options)),
      channel_(std::move(channel)),
      on_message_(std::move(on_message)),
      retry_(retry),
      thread_([this] { Run(); }) {}

RedisSubscriber::~RedisSubscriber() {
  stop_.store(true);
  thread_.join();
}

void RedisSubscriber::Run() {
  while (!stop_.load()) {
    Status s = Listen();
    subscribed_.store(false);
    if (stop_.load()) return;
    log::Debug("redis", "purge channel disconnected").kv("err", s.ToString());
    for (auto slept = std::chrono::milliseconds(0); slept < retry_ && !stop_.load(); slept += std::chrono::milliseconds(50)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
}

Status RedisSubscriber::Listen() {
  RedisConnection conn(redisConnectWithTimeout(options_.address.host.c_str(), options_.address.port,
                                               ToTimeval(options_.connect_timeout)));
  redisContext* ctx = conn.get();
  if (conn.broken()) return FromContext(ctx, "redis subscribe connect");
  if (redisSetTimeout(ctx, ToTimeval(options_.command_timeout)) != REDIS_OK) return FromContext(ctx, "redis set timeout");
  auto command = [&](std::vector<std::string> argv) -> Status {
    std::vector<const char*> args;
    std::vector<size_t> lens;
    for (const auto& a : argv) {
      args.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(redisCommandArgv(ctx, static_cast<int>(args.size()), args.data(), lens.data()));
    if (r == nullptr) return FromContext(ctx, "redis " + argv[0]);
    Status s = r->type == REDIS_REPLY_ERROR ? Status(ErrorCode::kUnavailable, "redis " + argv[0] + ": " + std::string(r->str, r->len))
                                            : Status::Ok();
    freeReplyObject(r);
    return s;
  };
  if (!options_.password.empty()) {
    if (Status s = command({"AUTH", options_.password}); !s.ok()) return s;
  }
  if (Status s = command({"SUBSCRIBE", channel_}); !s.ok()) return s;
  subscribed_.store(true);
  // Non-blocking from here: poll the socket, then parse whatever arrived.
  while (!stop_.load()) {
    void* raw = nullptr;
    if (redisGetReplyFromReader(ctx, &raw) != REDIS_OK) return FromContext(ctx, "redis subscribe read");
    if (raw != nullptr) {
      auto* r = static_cast<redisReply*>(raw);
      if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 && r->element[0]->type == REDIS_REPLY_STRING &&
          std::string_view(r->element[0]->str, r->element[0]->len) == "message" &&
          r->element[2]->type == REDIS_REPLY_STRING) {
        std::string message(r->element[2]->str, r->element[2]->len);
        freeReplyObject(r);
        on_message_(message);
      } else {
        freeReplyObject(r);
      }
      continue;
    }
    pollfd pfd{ctx->fd, POLLIN, 0};
    int n = ::poll(&pfd, 1, 200);
    if (n < 0 && errno != EINTR) return Status(ErrorCode::kConnectionLoss, "redis subscribe: poll failed");
    if (n <= 0) continue;
    if (redisBufferRead(ctx) != REDIS_OK) return FromContext(ctx, "redis subscribe read");
  }
  return Status::Ok();
}

}  // namespace webtier::cache
