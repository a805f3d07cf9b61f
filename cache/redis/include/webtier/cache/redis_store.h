// cache::Store on one Redis server through hiredis 0.14: a fixed address
// (--redis) or the master Sentinel names (--redis-sentinel, sentinel.h).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "webtier/cache/redis_master.h"
#include "webtier/cache/store.h"
#include "webtier/common/mutex.h"
#include "webtier/common/net.h"
#include "webtier/common/thread_annotations.h"

namespace webtier::cache {

namespace hiredis {
class Connection;
struct Reply;
}

struct RedisOptions {
  net::HostPort address;                                  // the Redis server, when `master` is unset
  std::shared_ptr<RedisMaster> master;                    // where the master is (overrides `address`)
  std::string user;                                       // AUTH's user (a Redis 6 ACL user); empty = the default user
  std::string password;                                   // AUTH; empty = none
  std::chrono::milliseconds connect_timeout{100};         // per connection attempt
  std::chrono::milliseconds command_timeout{250};         // per reply (redisSetTimeout)
  size_t max_idle_connections = 32;                       // kept open between requests
};

// Thread-safe: a pool of connections, one per concurrent caller, opened on
// demand (connect timeout, AUTH) and dropped after an error, so the next call
// reconnects. A command that finds its pooled connection closed by the server
// (e.g. after a Redis restart) empties the pool and is retried once on a new
// connection. Blocks at most connect + command timeouts (twice that only in
// that retry case). hiredis writes with write(2): the process must ignore
// SIGPIPE (the webnode does), or a dead server's socket kills it.
//
// Following a master (options.master): connections go to the address the
// RedisMaster names now; pooled ones opened to an earlier master are closed
// instead of reused. When it asks (VerifyRole), a new connection is used only
// after ROLE says "master" (one more command timeout on a new connection),
// so nothing is written to a former master. Every
// I/O error and every READONLY answer is reported to it (Suspect) and fails
// the call; while no master is known every call fails with kUnavailable.
class RedisStore final : public Store {
 public:
  explicit RedisStore(RedisOptions options);
  ~RedisStore() override;

  Status Get(const std::string& key, std::string* value) override;                                  // cache::Store
  Status Put(const std::string& key, const std::string& value, std::chrono::milliseconds ttl) override;  // cache::Store
  Status Delete(const std::string& key) override;                                                   // cache::Store
  Status TryLock(const std::string& key, const std::string& token, std::chrono::milliseconds ttl,
                 bool* acquired) override;                                                          // cache::Store
  Status Unlock(const std::string& key, const std::string& token) override;                         // cache::Store
  Status GetOrLock(const std::string& key, const std::string& lock_key, const std::string& token,
                   std::chrono::milliseconds ttl, std::string* value, bool* acquired,
                   uint64_t* purge_seq) override;                                                   // cache::Store
  Status Publish(const std::string& channel, const std::string& message) override;                  // cache::Store
  Status TakeSet(const std::string& key, std::vector<std::string>* members) override;                // cache::Store
  Status MarkPurged(const std::vector<std::string>& marks, std::chrono::milliseconds ttl) override;   // cache::Store
  Status PutFill(const FillWrite& write, bool* written) override;                                    // cache::Store
  // One pipeline on one connection: the commands in one write, the replies in one read when they fit.
  Status Run(std::vector<StoreOp>* ops) override;                                                   // cache::Store

 private:
  // Runs one command (binary-safe words) on a pooled connection; an error
  // reply is a failed Status.
  Status Command(const std::vector<std::string_view>& argv, hiredis::Reply* reply);
  // Runs commands as one pipeline on a pooled connection (the retry and
  // failover rules above); error replies are Ok but READONLY and its kind,
  // which fail it.
  Status Exchange(const std::vector<std::vector<std::string_view>>& argvs, std::vector<hiredis::Reply>* replies);
  // Sends again with EVAL the EVALSHA commands of `argvs` that `conn`
  // answered NOSCRIPT, their new replies in their places. An error: the
  // connection failed.
  Status RetryUnknownScripts(hiredis::Connection& conn, const std::vector<std::vector<std::string_view>>& argvs,
                             std::vector<hiredis::Reply>* replies);
  // A key no other fill of any node uses: where a fill's value waits for the
  // script that moves it into place (kPutFill).
  std::string StagingKey();
  static uint64_t NewSalt();  // 64 random bits: one per store, so per webnode
  // Run() of `op` alone: its status, and the op with its results in `*done`.
  Status RunOne(StoreOp op, StoreOp* done);
  // A pooled connection to the current master (`*reused`) or a new one.
  Status Acquire(std::unique_ptr<hiredis::Connection>* conn, bool* reused) WEBTIER_EXCLUDES(mu_);
  void Release(std::unique_ptr<hiredis::Connection> conn) WEBTIER_EXCLUDES(mu_);
  // Closes every pooled connection (after one turned out dead).
  void DropIdle() WEBTIER_EXCLUDES(mu_);

  const RedisOptions options_;
  const std::shared_ptr<RedisMaster> master_;
  Mutex mu_;
  std::vector<std::unique_ptr<hiredis::Connection>> idle_ WEBTIER_GUARDED_BY(mu_);
  const uint64_t staging_salt_;
  std::atomic<uint64_t> staging_seq_{0};
};

// Listens on one Redis channel (SUBSCRIBE) on its own connection and thread
// and calls `on_message` there for every message. While Redis is unreachable
// it retries every `retry`; messages published meanwhile are lost. With
// options.master it subscribes on the current master and moves when that
// changes. A silent connection is found dead within 2 s (hiredis_conn.h
// Subscribe). The destructor stops the thread within ~100 ms. `on_state`,
// when given, runs on that thread with true each time a subscription is
// confirmed and with false each time one ends (what is published while none
// stands is lost: the listener may want to forget what it could have missed).
class RedisSubscriber {
 public:
  RedisSubscriber(RedisOptions options, std::string channel, std::function<void(const std::string&)> on_message,
                  std::chrono::milliseconds retry = std::chrono::milliseconds(500),
                  std::function<void(bool)> on_state = nullptr);
  ~RedisSubscriber();
  RedisSubscriber(const RedisSubscriber&) = delete;
  RedisSubscriber& operator=(const RedisSubscriber&) = delete;

  // True while subscribed (for tests and /health).
  bool subscribed() const { return subscribed_.load(); }

 private:
  void Run();
  // Connects, authenticates and subscribes; then delivers until an error or stop.
  Status Listen();

  const RedisOptions options_;
  const std::shared_ptr<RedisMaster> master_;
  const std::string channel_;
  const std::function<void(const std::string&)> on_message_;
  const std::chrono::milliseconds retry_;
  const std::function<void(bool)> on_state_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> subscribed_{false};
  std::thread thread_;
};

}  // namespace webtier::cache
