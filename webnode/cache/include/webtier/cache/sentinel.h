// Redis master discovery through Sentinel (--redis-sentinel): which node is
// the master now, followed across failovers without a restart.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "webtier/cache/redis_master.h"

namespace prometheus {
class Counter;
}

namespace webtier::cache {

struct SentinelOptions {
  std::vector<net::HostPort> sentinels;             // tried in turn; at least one
  std::string master_name = "webtier";              // SENTINEL get-master-addr-by-name <this>
  std::chrono::milliseconds connect_timeout{100};   // per Sentinel connection attempt
  std::chrono::milliseconds command_timeout{250};   // per Sentinel reply
  std::chrono::milliseconds recheck{1000};          // ask again this often even when nothing is wrong
  std::chrono::milliseconds retry{200};             // ask again this soon while no answer / after Suspect
};

// Asks the Sentinels one after another, starting at index `first` (mod the
// count), for the master's address; the first one that answers wins and
// `*answered` (optional) gets its index. kUnavailable when none knows it
// (unreachable, or the name is not monitored). Blocks at most
// count * (connect + command timeouts).
Status AskSentinels(const SentinelOptions& options, size_t first, net::HostPort* master, size_t* answered = nullptr);

// RedisMaster from Sentinel. One thread of its own:
//  - asks (AskSentinels) at start, every `recheck`, and within `retry` of a
//    Suspect() (starting with the next Sentinel, so one that lags behind a
//    failover is not asked first again) and while no Sentinel answers;
//  - holds a pub/sub connection to one Sentinel on `+switch-master` and
//    switches as soon as it names this master; reconnects (to the next
//    Sentinel) when that connection fails.
// A change of address (not the first discovery) is a failover: it bumps the
// generation, logs one line and counts in `failovers`. While no Sentinel has
// answered, Current() is kUnavailable (the cache bypasses Redis).
// Thread-safe; the destructor stops the thread within ~100 ms plus one ask.
class SentinelMaster final : public RedisMaster {
 public:
  // `failovers` (optional, e.g. webnode_redis_failovers_total) must outlive this.
  explicit SentinelMaster(SentinelOptions options, prometheus::Counter* failovers = nullptr);
  ~SentinelMaster() override;
  SentinelMaster(const SentinelMaster&) = delete;
  SentinelMaster& operator=(const SentinelMaster&) = delete;

  Status Current(net::HostPort* address, uint64_t* generation) const override;  // cache::RedisMaster
  void Suspect(uint64_t generation) override;                                   // cache::RedisMaster
  bool VerifyRole() const override { return true; }                             // cache::RedisMaster

  // Master changes followed so far.
  uint64_t failovers() const { return failovers_.load(); }
  // True while the +switch-master subscription is up (for tests).
  bool subscribed() const { return subscribed_.load(); }

 private:
  void Run();
  // Asks the Sentinels when due and adopts the answer.
  void AskIfDue();
  // Adopts `address` as the master (a failover when it differs).
  void Adopt(const net::HostPort& address, const char* how);
  // A +switch-master payload: "<name> <old-ip> <old-port> <new-ip> <new-port>".
  void OnSwitch(const std::string& payload);

  const SentinelOptions options_;
  prometheus::Counter* const failovers_metric_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> subscribed_{false};
  std::atomic<uint64_t> failovers_{0};

  mutable std::mutex mu_;
  bool known_ = false;                                 // guarded by mu_
  net::HostPort master_;                               // guarded by mu_
  uint64_t generation_ = 0;                            // guarded by mu_
  std::chrono::steady_clock::time_point last_ask_{};   // guarded by mu_
  std::chrono::steady_clock::time_point next_ask_{};   // guarded by mu_
  size_t first_ = 0;                                   // guarded by mu_: the Sentinel asked first
  bool rotate_ = false;                                // guarded by mu_: start the next ask one further
  bool answering_ = true;                              // the thread's own: last ask got an answer
  std::thread thread_;                                 // last: starts once the rest is built
};

}  // namespace webtier::cache
