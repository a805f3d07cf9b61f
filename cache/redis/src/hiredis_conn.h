// hiredis, wrapped once for everything in webtier::cache that talks to Redis
// or Sentinel (RedisStore, RedisSubscriber, SentinelMaster): RAII over
// redisContext*, the one translation of hiredis failures into Status, and the
// dial / command / subscribe steps they share. Private to the library.
//
// Threading: a Connection is not thread-safe (hiredis contexts are not) and
// is dead after any I/O or protocol error (broken()); throw it away then.
// hiredis writes with write(2): the process must ignore SIGPIPE.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "webtier/common/net.h"
#include "webtier/common/status.h"

struct redisContext;

namespace webtier::cache::hiredis {

// A reply copied out of hiredis (binary-safe strings, nested arrays).
struct Reply {
  enum class Type { kNil, kString, kStatus, kError, kInteger, kArray };
  Type type = Type::kNil;
  std::string str;              // kString, kStatus, kError
  long long integer = 0;        // kInteger
  std::vector<Reply> elements;  // kArray
};

// One connection. Move-only RAII over redisContext*.
class Connection {
 public:
  explicit Connection(redisContext* ctx) : ctx_(ctx) {}
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  redisContext* get() const { return ctx_; }
  // After an I/O or protocol error hiredis cannot use the context again.
  bool broken() const;

  // Free for the owner: RedisStore records which master generation the
  // connection was opened to, so a failover retires it.
  uint64_t generation = 0;

 private:
  redisContext* ctx_;
};

struct DialOptions {
  std::chrono::milliseconds connect_timeout{100};  // per connection attempt
  std::chrono::milliseconds command_timeout{250};  // per reply (redisSetTimeout)
  std::string user;                                // AUTH's user (Redis 6 ACL); empty = the default user
  std::string password;                            // AUTH; empty = none
};

// Connects with the connect timeout, sets the reply timeout (without it a
// stalled server blocks hiredis forever) and authenticates. kUnavailable
// (refused, AUTH rejected), kTimeout or kConnectionLoss otherwise.
Status Dial(const net::HostPort& address, const DialOptions& options, std::unique_ptr<Connection>* out);

// One command's words (binary-safe), each a view of bytes the caller keeps
// alive until the call returns.
using Argv = std::vector<std::string_view>;

// Sends one command and reads its reply. An I/O failure is the Status (the
// connection is then broken); an error reply is Ok with reply->type == kError.
Status Command(Connection& conn, const Argv& argv, Reply* reply);

// Sends every command of `argvs` at once (one write when they fit the
// output buffer) and reads their replies in order into `*replies`. An I/O
// failure is the Status (the connection is then broken); error replies are
// Ok, each with type kError.
Status Pipeline(Connection& conn, const std::vector<Argv>& argvs, std::vector<Reply>* replies);

// An error reply as Status (kInternal, or kUnavailable for READONLY/LOADING/
// MASTERDOWN, which say "this node cannot serve that now"), else Ok.
Status FromErrorReply(const Reply& reply, std::string_view what);

// Ok when the node behind `conn` (at `address`, for the message) says with
// ROLE that it is a master; kUnavailable "... is a slave, not the master"
// when it answers with another role (then *role, when given, is that role);
// the I/O or error-reply Status otherwise (*role left empty).
Status CheckIsMaster(Connection& conn, const net::HostPort& address, std::string* role = nullptr);

// SUBSCRIBEs `conn` to `channel`, then calls on_message(payload) for every
// message until `stop` is set (checked every ~100 ms), `keep_going()` returns
// false (also checked then; Ok is returned), or the connection fails (its
// Status). `on_subscribed` runs once the subscription is confirmed. After 1 s
// of silence it sends a PING; no answer within 1 s more is a failure
// (kConnectionLoss): a dead connection is noticed within 2 s.
Status Subscribe(Connection& conn, const std::string& channel, const std::atomic<bool>& stop,
                 const std::function<void()>& on_subscribed,
                 const std::function<void(const std::string&)>& on_message,
                 const std::function<bool()>& keep_going);

}  // namespace webtier::cache::hiredis
