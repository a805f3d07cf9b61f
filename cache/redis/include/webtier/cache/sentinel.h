// Redis master discovery through Sentinel (--redis-sentinel): which node is
// the master now, followed across failovers without a restart.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "webtier/cache/redis_master.h"
#include "webtier/common/mutex.h"
#include "webtier/common/thread_annotations.h"

namespace prometheus {
class Counter;
}

namespace webtier::cache {

struct SentinelOptions {
  std::vector<net::HostPort> sentinels;             // tried in turn; at least one
  std::string master_name = "webtier";              // SENTINEL get-master-addr-by-name <this>
  std::string password;                             // the Sentinels' AUTH (their requirepass); empty = none
  std::string redis_password;                       // the Redis servers' AUTH, for the ROLE check; empty = none
  std::chrono::milliseconds connect_timeout{100};   // per Sentinel connection attempt
  std::chrono::milliseconds command_timeout{250};   // per Sentinel reply
  std::chrono::milliseconds recheck{1000};          // ask again this often even when nothing is wrong
  std::chrono::milliseconds retry{200};             // ask again this soon while no answer / after Suspect
};

// What the Sentinels say about the master: its address and the config epoch
// of that configuration (every failover raises it).
struct SentinelAnswer {
  net::HostPort master;
  uint64_t config_epoch = 0;
  bool from_all = false;  // every configured Sentinel answered
};

// Asks every Sentinel in turn (SENTINEL MASTER <name>) and keeps the answer
// with the highest config epoch, so one Sentinel that has not yet heard of a
// failover cannot send the caller back to the old master. kUnavailable when
// none answers (unreachable, or the name is not monitored). Blocks at most
// count * (connect + command timeouts).
Status AskSentinels(const SentinelOptions& options, SentinelAnswer* answer);

// RedisMaster from Sentinel. One thread of its own:
//  - asks (AskSentinels) at start, every `recheck`, within `retry` of a
//    Suspect(), and while no Sentinel answers;
//  - holds a pub/sub connection to one Sentinel on `+switch-master` and asks
//    at once when a message names this master; reconnects (to the next
//    Sentinel) when that connection fails.
// A master is taken from the Sentinels only once the server itself confirms
// it: a new connection to it (with `redis_password`) and ROLE answering
// "master". Sentinel's word alone is not enough: a stale or tampered Sentinel
// may name a replica or a server that is no part of the set. A named address
// that is unreachable or says another role is not used: the answer held
// before stays (none at first: the cache bypasses Redis), it is asked again
// within `retry`, one line is logged per address rejected in a row, and every
// rejection counts in `rejected`.
// An answer with a lower config epoch than the one held is ignored, so the
// master never moves back to a former one; only when every Sentinel answers
// with an older epoch (they were reset) is it followed. A change of address (not the first
// discovery) is a failover: it bumps the generation, logs one line and counts
// in `failovers`. While no Sentinel has answered, Current() is kUnavailable
// (the cache bypasses Redis); later, the last answer stays while none answers.
// Thread-safe; the destructor stops the thread within ~100 ms plus one ask.
class SentinelMaster final : public RedisMaster {
 public:
  // `failovers` and `rejected` (optional, e.g. webnode_redis_failovers_total
  // and webnode_redis_master_rejected_total) must outlive this.
  explicit SentinelMaster(SentinelOptions options, prometheus::Counter* failovers = nullptr,
                          prometheus::Counter* rejected = nullptr);
  ~SentinelMaster() override;
  SentinelMaster(const SentinelMaster&) = delete;
  SentinelMaster& operator=(const SentinelMaster&) = delete;

  // cache::RedisMaster
  Status Current(net::HostPort* address, uint64_t* generation) const override WEBTIER_EXCLUDES(mu_);
  void Suspect(uint64_t generation) override WEBTIER_EXCLUDES(mu_);
  bool VerifyRole() const override { return true; }

  // Master changes followed so far.
  uint64_t failovers() const { return failovers_.load(); }
  // Sentinel answers not used because the server named did not confirm with ROLE.
  uint64_t rejected() const { return rejected_.load(); }
  // True while the +switch-master subscription is up (for tests).
  bool subscribed() const { return subscribed_.load(); }

 private:
  void Run() WEBTIER_EXCLUDES(mu_);
  // Asks the Sentinels when due and adopts the answer.
  void AskIfDue() WEBTIER_EXCLUDES(mu_);
  // Ok when `master` is the one held or answers ROLE master; else logs (once
  // per address in a row) and counts the rejection.
  Status Confirm(const net::HostPort& master) WEBTIER_EXCLUDES(mu_);
  // Adopts the answer unless its epoch is older (a failover when the address changes).
  void Adopt(const SentinelAnswer& answer) WEBTIER_EXCLUDES(mu_);
  // A +switch-master payload: "<name> <old-ip> <old-port> <new-ip> <new-port>".
  void OnSwitch(const std::string& payload) WEBTIER_EXCLUDES(mu_);

  const SentinelOptions options_;
  prometheus::Counter* const failovers_metric_;
  prometheus::Counter* const rejected_metric_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> subscribed_{false};
  std::atomic<uint64_t> failovers_{0};
  std::atomic<uint64_t> rejected_{0};

  mutable Mutex mu_;
  bool known_ WEBTIER_GUARDED_BY(mu_) = false;
  net::HostPort master_ WEBTIER_GUARDED_BY(mu_);
  uint64_t epoch_ WEBTIER_GUARDED_BY(mu_) = 0;  // config epoch of master_
  uint64_t generation_ WEBTIER_GUARDED_BY(mu_) = 0;
  std::chrono::steady_clock::time_point last_ask_ WEBTIER_GUARDED_BY(mu_){};
  std::chrono::steady_clock::time_point next_ask_ WEBTIER_GUARDED_BY(mu_){};
  bool answering_ = true;                              // the thread's own: last ask got an answer
  std::string last_rejected_;                          // the thread's own: address last rejected, "" after a confirm
  std::thread thread_;                                 // last: starts once the rest is built
};

}  // namespace webtier::cache
