// Load-balancing policies: which member gets the next request. A policy is
// built for one fixed member list and thrown away when the list changes, so
// per-list state (the round-robin index, the hash ring) resets with it.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "webtier/balancer/config.h"
#include "webtier/balancer/upstream/member.h"
#include "webtier/common/mutex.h"

namespace webtier::balancer {

// Which members may take this attempt: not tried yet for this request, and
// routable (not ejected, not failing its checks) unless `allow_ejected`
// (panic mode: no other member is routable).
struct MemberFilter {
  std::span<Member* const> tried;
  Clock::time_point now;
  bool allow_ejected = false;
  std::chrono::milliseconds slow_start{0};  // --slow-start-ms
  bool Admits(const Member& member) const;
  // The member's slow-start share (1 when off or done).
  double Ramp(const Member& member) const { return slow_start.count() > 0 ? member.Ramp(now, slow_start) : 1.0; }
  // Admits it, and (slow start) draws it with probability Ramp: a ramping
  // member passed over leaves the pick to the next one.
  bool Draws(const Member& member) const;
};

// Uniform in [0, 1), from a per-thread generator.
double RandomUnit();

// Thread-safe: Pick() may run on every proxy thread at once.
class Policy {
 public:
  virtual ~Policy() = default;
  // A member admitted by `filter`, or nullptr when none is. `hash_key` is the
  // request path (used by consistent_hash only).
  virtual Member* Pick(std::string_view hash_key, const MemberFilter& filter) = 0;
};

// `members` must outlive the policy. `seed` feeds the random choices.
std::unique_ptr<Policy> MakePolicy(PolicyKind kind, std::vector<Member*> members, uint64_t seed);

// Equal shares (±1 over any run) over the admitted members, in list order.
class RoundRobinPolicy : public Policy {
 public:
  explicit RoundRobinPolicy(std::vector<Member*> members) : members_(std::move(members)) {}
  Member* Pick(std::string_view hash_key, const MemberFilter& filter) override;  // balancer::Policy

 private:
  std::vector<Member*> members_;
  std::atomic<uint64_t> next_{0};
};

// nginx's smooth weighted round robin: shares proportional to member weight,
// interleaved (5,1,1 gives a a b a c a a, not a a a a a b c).
class WeightedRoundRobinPolicy : public Policy {
 public:
  explicit WeightedRoundRobinPolicy(std::vector<Member*> members);
  Member* Pick(std::string_view hash_key, const MemberFilter& filter) override;  // balancer::Policy

 private:
  std::vector<Member*> members_;
  Mutex mu_;
  std::vector<int64_t> current_ WEBTIER_GUARDED_BY(mu_);
};

// Power of two choices: two random admitted members, the one with fewer
// requests in flight wins.
class LeastRequestPolicy : public Policy {
 public:
  LeastRequestPolicy(std::vector<Member*> members, uint64_t seed) : members_(std::move(members)), seed_(seed) {}
  Member* Pick(std::string_view hash_key, const MemberFilter& filter) override;  // balancer::Policy

 private:
  std::vector<Member*> members_;
  std::atomic<uint64_t> seed_;
};

// A hash ring over the request path with kVirtualNodes points per member (scaled
// by weight/100): a path keeps its member while the member stays, and a member
// leaving only moves the paths it had.
class ConsistentHashPolicy : public Policy {
 public:
  static constexpr int kVirtualNodes = 160;
  explicit ConsistentHashPolicy(std::vector<Member*> members);
  Member* Pick(std::string_view hash_key, const MemberFilter& filter) override;  // balancer::Policy

  static uint64_t Hash(std::string_view data);

 private:
  std::vector<std::pair<uint64_t, Member*>> ring_;  // sorted by hash
  size_t distinct_hosts_ = 0;
};

}  // namespace webtier::balancer
