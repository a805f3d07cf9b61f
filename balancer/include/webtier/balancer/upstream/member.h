// One upstream member as the proxy sees it: the record from ZooKeeper, its
// resolved address, live counters, the passive/outlier-ejection state and
// what the health checker last published (health_checker.h). Workers read
// all of it lock-free on the request path.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <boost/asio/ip/tcp.hpp>
#include <prometheus/counter.h>

#include "webtier/balancer/clock.h"
#include "webtier/balancer/upstream/answer_stats.h"
#include "webtier/balancer/health/health_rules.h"
#include "webtier/common/membership.h"
#include "webtier/common/serverset.h"

namespace webtier::balancer {

// The record writer and reader agree on (common/include/webtier/common/membership.h).
using MemberRecord = membership::MemberRecord;

// Outcome of one upstream attempt, the `outcome` label of
// balancer_upstream_requests_total.
enum class Outcome { kOk = 0, kConnectFailure, kReset, kTimeout, kCount };
const char* OutcomeName(Outcome outcome);

// Thread-safe: shared by every proxy thread; all mutable state is atomic but
// `history`'s, which is written only when a check or an ejection happens.
// Lives as long as any snapshot or pooled connection refers to it.
class Member : public std::enable_shared_from_this<Member> {
 public:
  // `outcomes` may hold nullptrs (tests): then nothing is counted.
  // `health`: kPending when active checks are on (no traffic before a pass).
  Member(MemberRecord record, boost::asio::ip::tcp::endpoint endpoint,
       std::array<prometheus::Counter*, static_cast<size_t>(Outcome::kCount)> outcomes = {},
       Health health = Health::kUnchecked);

  const std::string& key() const { return record_.key; }
  const serverset::Member& serverset() const { return record_.member; }
  const MemberRecord& record() const { return record_; }
  const boost::asio::ip::tcp::endpoint& endpoint() const { return endpoint_; }
  // endpoint() as text: "ip:port", an IPv6 address in brackets.
  const std::string& address() const { return address_; }

  // Set once the member left the pool: no new requests, idle connections close.
  bool removed() const { return removed_.load(std::memory_order_relaxed); }
  void MarkRemoved() { removed_.store(true, std::memory_order_relaxed); }

  bool Ejected(Clock::time_point now) const;
  // A connection was refused or timed out: eject for a back-off that doubles
  // with each consecutive ejection (1 s, 2 s, 4 s ... capped at 30 s).
  // Returns true when this call ejected it (it was not ejected already).
  bool Eject(Clock::time_point now);
  // Ejects for `duration` (outlier ejection); true when this call ejected it.
  bool Eject(Clock::time_point now, std::chrono::milliseconds duration);
  // A non-5xx response arrived: the back-off starts again at 1 s and the run
  // of 5xx answers ends.
  void RecordSuccess();
  Clock::time_point ejected_until() const;
  // Takes over a predecessor process's state (control/handover.h): ejected
  // until `until` (none when not after now), after `consecutive` ejections.
  void RestoreEjection(Clock::time_point now, Clock::time_point until, int consecutive);
  // Ejections so far (each one also raises the next one's back-off).
  int ejection_count() const { return consecutive_ejections_.load(std::memory_order_relaxed); }
  uint64_t ejections() const { return ejections_.load(std::memory_order_relaxed); }
  // A 5xx answer or a failed connect: true when it makes `threshold` in a
  // row (the run then starts again); `threshold` 0 = never.
  bool RecordOutlierFailure(int threshold);

  // Health as the checker last published it (release/acquire).
  Health health() const { return health_.load(std::memory_order_acquire); }
  void SetHealth(Health health, Clock::time_point now);
  CheckResult last_check() const { return last_check_.load(std::memory_order_relaxed); }
  void SetLastCheck(CheckResult result) { last_check_.store(result, std::memory_order_relaxed); }
  // Not ejected and admitted by the checks: may take new requests.
  bool Routable(Clock::time_point now) const { return HealthAdmits(health()) && !Ejected(now); }
  // Its slow-start share (SlowStartFactor) `window` after it became healthy.
  double Ramp(Clock::time_point now, std::chrono::milliseconds window) const;

  void Count(Outcome outcome);

  std::atomic<int> in_flight{0};       // attempts under way
  std::atomic<uint64_t> requests{0};   // attempts started
  AnswerStats answers;                 // its own answers relayed to clients (status page)
  MemberHistory history;               // its last checks and ejections (status page)

 private:
  MemberRecord record_;
  boost::asio::ip::tcp::endpoint endpoint_;
  std::string address_;
  std::array<prometheus::Counter*, static_cast<size_t>(Outcome::kCount)> outcomes_;
  std::atomic<bool> removed_{false};
  std::atomic<int64_t> ejected_until_ns_{0};   // steady clock, 0 = never ejected
  std::atomic<int> consecutive_ejections_{0};
  std::atomic<uint64_t> ejections_{0};
  std::atomic<int> consecutive_5xx_{0};
  std::atomic<Health> health_;
  std::atomic<CheckResult> last_check_{CheckResult::kNone};
  std::atomic<int64_t> healthy_since_ns_;  // steady clock: when it last became healthy
};

}  // namespace webtier::balancer
