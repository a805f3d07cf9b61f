// The live set of upstream members. Membership changes arrive as deltas and
// produce a new immutable MemberSet (with a fresh policy); proxy threads read
// the current one lock-free in the common case (version check).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "webtier/balancer/membership/address_policy.h"
#include "webtier/balancer/config.h"
#include "webtier/balancer/upstream/member.h"
#include "webtier/balancer/upstream/policy.h"
#include "webtier/common/mutex.h"

namespace prometheus { class Registry; }

namespace webtier::balancer {

class ProxyMetrics;

// Receives membership deltas (Envoy style). `removed` holds record keys.
class MembershipListener {
 public:
  virtual ~MembershipListener() = default;
  virtual void OnMembershipUpdate(const std::vector<MemberRecord>& added,
                                  const std::vector<std::string>& removed) = 0;
};

// What a pool generation needs from HealthOptions.
struct PoolOptions {
  Health initial_health = Health::kUnchecked;  // kPending when active checks are on
  int max_ejection_percent = 50;
  std::chrono::milliseconds slow_start{0};
  std::string zone;  // empty: no locality
  AddressPolicy member_allow;  // members whose resolved address it refuses stay out of the pool
  static PoolOptions From(const HealthOptions& h) {
    return {h.checks() ? Health::kPending : Health::kUnchecked, h.max_ejection_percent,
            std::chrono::milliseconds(h.slow_start_ms), h.zone};
  }
};

// One immutable generation of the pool.
struct MemberSet {
  std::vector<std::shared_ptr<Member>> members;
  std::unique_ptr<Policy> policy;
  PoolOptions options;
  // With a zone: the policies over the members in it and over the others.
  std::unique_ptr<Policy> local_policy, remote_policy;
  std::vector<Member*> local_hosts;

  // A member for this request that is not in `tried`: a routable one if any
  // (not ejected, not failing its checks; with a zone, local ones for
  // LocalShare of the requests, else the others), else (panic mode, judged
  // per zone) any; nullptr when every member was tried.
  Member* Pick(std::string_view hash_key, std::span<Member* const> tried, Clock::time_point now) const;
  // Ejects `member` for `duration` (nullopt: the connect back-off) unless that
  // would take more than --max-ejection-percent of this generation or its
  // last member; true when this call ejected it.
  bool TryEject(Member& member, Clock::time_point now, std::optional<std::chrono::milliseconds> duration) const;
  bool Local(const Member& member) const { return !options.zone.empty() && member.serverset().zone == options.zone; }

 private:
  Member* PickIn(Policy& policy, std::string_view hash_key, std::span<Member* const> tried, Clock::time_point now,
               bool panic) const;
  mutable Mutex eject_mu_;  // ejections only: the cap counts and ejects as one step
};

// Thread-safe. Updates (from the membership thread) are serialized and build
// the next generation, resolving names, without holding the lock readers
// (the proxy and admin threads) take: they only wait for the pointer swap.
class Pool : public MembershipListener {
 public:
  // `metrics` may be null (tests).
  Pool(PolicyKind policy, ProxyMetrics* metrics, PoolOptions options = {});

  void OnMembershipUpdate(const std::vector<MemberRecord>& added,
                          const std::vector<std::string>& removed) override;  // balancer::MembershipListener

  std::shared_ptr<const MemberSet> Snapshot() const WEBTIER_EXCLUDES(mu_);
  // Bumped on every change; lets readers skip the lock when unchanged.
  uint64_t version() const { return version_.load(std::memory_order_acquire); }
  std::vector<MemberRecord> Records() const;
  PolicyKind policy() const { return policy_; }
  const PoolOptions& options() const { return options_; }
  // Called (on the updating thread) after every new generation, e.g. by the
  // health checker to check new members at once; null removes it. Waits for
  // an update under way: once it returns, the old hook does not run again.
  void SetUpdateHook(std::function<void()> hook) WEBTIER_EXCLUDES(update_mu_);

 private:
  // Hosts for `records`; the ones whose member does not resolve, or resolves to
  // an address member_allow refuses, are logged and left out (once per record
  // added: an unchanged record is not offered again).
  std::vector<std::shared_ptr<Member>> MakeMembers(const std::vector<MemberRecord>& records) const;

  // The next generation over `members` (ordered by key), its policies built.
  std::shared_ptr<MemberSet> MakeMemberSet(std::vector<std::shared_ptr<Member>> members) WEBTIER_REQUIRES(update_mu_);

  const PolicyKind policy_;
  ProxyMetrics* metrics_;
  const PoolOptions options_;
  Mutex update_mu_ WEBTIER_ACQUIRED_BEFORE(mu_);  // serializes OnMembershipUpdate
  std::function<void()> update_hook_ WEBTIER_GUARDED_BY(update_mu_);
  mutable Mutex mu_;
  std::shared_ptr<const MemberSet> current_ WEBTIER_GUARDED_BY(mu_);
  std::atomic<uint64_t> version_{0};
  uint64_t seed_ WEBTIER_GUARDED_BY(update_mu_) = 0x9e3779b97f4a7c15ULL;
};

// Resolves a member's member (IP literal, or a name through getaddrinfo; IPv4
// preferred). Blocking; false when it cannot be resolved.
bool ResolveMember(const serverset::Member& member, boost::asio::ip::tcp::endpoint* out);

// The address as the member address policy sees it (IPv4-mapped folded to IPv4).
IpAddress ToIpAddress(const boost::asio::ip::address& address);

}  // namespace webtier::balancer
