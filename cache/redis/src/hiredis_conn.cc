// hiredis wrapper: the one place hiredis failures become Status (FromContext).
#include "hiredis_conn.h"

#include <hiredis/hiredis.h>
#include <poll.h>

#include <cerrno>
#include <chrono>

namespace webtier::cache::hiredis {
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

Reply Copy(const redisReply* r) {
  Reply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = Reply::Type::kString;
      break;
    case REDIS_REPLY_STATUS:
      out.type = Reply::Type::kStatus;
      break;
    case REDIS_REPLY_ERROR:
      out.type = Reply::Type::kError;
      break;
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::kArray;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(Copy(r->element[i]));
      break;
    default:
      out.type = Reply::Type::kNil;
  }
  if (out.type == Reply::Type::kString || out.type == Reply::Type::kStatus || out.type == Reply::Type::kError) {
    out.str.assign(r->str, r->len);
  }
  return out;
}

// A pub/sub "message" push: ["message", channel, payload].
bool IsMessage(const Reply& r) {
  return r.type == Reply::Type::kArray && r.elements.size() == 3 && r.elements[0].str == "message" &&
         r.elements[2].type == Reply::Type::kString;
}

}  // namespace

Connection::~Connection() {
  if (ctx_ != nullptr) redisFree(ctx_);
}

bool Connection::broken() const { return ctx_ == nullptr || ctx_->err != 0; }

Status Dial(const net::HostPort& address, const DialOptions& options, std::unique_ptr<Connection>* out) {
  auto conn = std::make_unique<Connection>(
      redisConnectWithTimeout(address.host.c_str(), address.port, ToTimeval(options.connect_timeout)));
  if (conn->broken()) return FromContext(conn->get(), "redis connect " + address.ToString());
  if (redisSetTimeout(conn->get(), ToTimeval(options.command_timeout)) != REDIS_OK) {
    return FromContext(conn->get(), "redis set timeout");
  }
  if (!options.password.empty()) {
    Reply r;
    const Status s = options.user.empty() ? Command(*conn, {"AUTH", options.password}, &r)
                                          : Command(*conn, {"AUTH", options.user, options.password}, &r);
    if (!s.ok()) return s;
    if (r.type == Reply::Type::kError) return Status(ErrorCode::kUnavailable, "redis auth: " + r.str);
  }
  *out = std::move(conn);
  return Status::Ok();
}

namespace {

// Queues one command in the context's output buffer.
bool Append(redisContext* ctx, const Argv& argv) {
  std::vector<const char*> args;
  std::vector<size_t> lens;
  args.reserve(argv.size());
  lens.reserve(argv.size());
  for (const auto& a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  return redisAppendCommandArgv(ctx, static_cast<int>(args.size()), args.data(), lens.data()) == REDIS_OK;
}

}  // namespace

Status Command(Connection& conn, const Argv& argv, Reply* reply) {
  std::vector<Reply> replies;
  if (Status s = Pipeline(conn, {argv}, &replies); !s.ok()) return s;
  *reply = std::move(replies.front());
  return Status::Ok();
}

Status Pipeline(Connection& conn, const std::vector<Argv>& argvs, std::vector<Reply>* replies) {
  // Named only for a failure's message.
  auto failed = [&] { return FromContext(conn.get(), "redis " + std::string(argvs.empty() ? "" : argvs.front()[0])); };
  for (const auto& argv : argvs) {
    if (!Append(conn.get(), argv)) return failed();
  }
  replies->clear();
  replies->reserve(argvs.size());
  for (size_t i = 0; i < argvs.size(); ++i) {
    void* raw = nullptr;  // the first call writes the whole buffer out, then each reads
    if (redisGetReply(conn.get(), &raw) != REDIS_OK || raw == nullptr) return failed();
    replies->push_back(Copy(static_cast<redisReply*>(raw)));
    freeReplyObject(raw);
  }
  return Status::Ok();
}

Status FromErrorReply(const Reply& reply, std::string_view what) {
  if (reply.type != Reply::Type::kError) return Status::Ok();
  const std::string msg = std::string(what) + ": " + reply.str;
  for (std::string_view busy : {"READONLY", "LOADING", "MASTERDOWN"}) {
    if (reply.str.compare(0, busy.size(), busy) == 0) return Status(ErrorCode::kUnavailable, msg);
  }
  return Status(ErrorCode::kInternal, msg);
}

Status CheckIsMaster(Connection& conn, const net::HostPort& address, std::string* role) {
  if (role != nullptr) role->clear();
  Reply r;
  if (Status s = Command(conn, {"ROLE"}, &r); !s.ok()) return s;
  if (Status s = FromErrorReply(r, "redis " + address.ToString() + " ROLE"); !s.ok()) return s;
  if (r.type == Reply::Type::kArray && !r.elements.empty() && r.elements[0].str == "master") return Status::Ok();
  const std::string said = r.type == Reply::Type::kArray && !r.elements.empty() ? r.elements[0].str : "?";
  if (role != nullptr) *role = said;
  return Status(ErrorCode::kUnavailable, "redis " + address.ToString() + " is a " + said + ", not the master");
}

Status Subscribe(Connection& conn, const std::string& channel, const std::atomic<bool>& stop,
                 const std::function<void()>& on_subscribed,
                 const std::function<void(const std::string&)>& on_message,
                 const std::function<bool()>& keep_going) {
  Reply confirm;
  if (Status s = Command(conn, {"SUBSCRIBE", channel}, &confirm); !s.ok()) return s;
  if (Status s = FromErrorReply(confirm, "redis SUBSCRIBE"); !s.ok()) return s;
  on_subscribed();
  redisContext* ctx = conn.get();
  // A connection that died without a FIN (a cut link, a frozen server) is
  // silent like an idle channel: after kHeartbeat of silence a PING goes out
  // (allowed while subscribed), and no answer within kHeartbeat more ends it.
  using Clock = std::chrono::steady_clock;
  constexpr auto kHeartbeat = std::chrono::seconds(1);
  auto last_heard = Clock::now();
  bool pinged = false;
  // Non-blocking from here: poll the socket, then parse whatever arrived.
  while (!stop.load() && keep_going()) {
    void* raw = nullptr;
    if (redisGetReplyFromReader(ctx, &raw) != REDIS_OK) return FromContext(ctx, "redis subscribe read");
    if (raw != nullptr) {
      Reply r = Copy(static_cast<redisReply*>(raw));
      freeReplyObject(raw);
      if (IsMessage(r)) on_message(r.elements[2].str);
      continue;
    }
    const auto now = Clock::now();
    if (now - last_heard >= kHeartbeat && !pinged) {
      int done = 0;
      if (redisAppendCommand(ctx, "PING") != REDIS_OK) return FromContext(ctx, "redis subscribe ping");
      while (!done) {
        if (redisBufferWrite(ctx, &done) != REDIS_OK) return FromContext(ctx, "redis subscribe ping");
      }
      pinged = true;
    } else if (pinged && now - last_heard >= 2 * kHeartbeat) {
      return Status(ErrorCode::kConnectionLoss, "redis subscribe: no answer to PING");
    }
    pollfd pfd{ctx->fd, POLLIN, 0};
    int n = ::poll(&pfd, 1, 100);
    if (n < 0 && errno != EINTR) return Status(ErrorCode::kConnectionLoss, "redis subscribe: poll failed");
    if (n <= 0) continue;
    if (redisBufferRead(ctx) != REDIS_OK) return FromContext(ctx, "redis subscribe read");
    last_heard = Clock::now();
    pinged = false;
  }
  return Status::Ok();
}

}  // namespace webtier::cache::hiredis
