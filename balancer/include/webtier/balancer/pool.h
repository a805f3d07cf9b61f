// The live set of upstream members. Membership changes arrive as deltas and
// produce a new immutable HostSet (with a fresh policy); proxy threads read
// the current one lock-free in the common case (version check).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "webtier/balancer/config.h"
#include "webtier/balancer/host.h"
#include "webtier/balancer/policy.h"

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

// One immutable generation of the pool.
struct HostSet {
  std::vector<std::shared_ptr<Host>> hosts;
  std::unique_ptr<Policy> policy;

  // A host for this request that is not in `tried`: a healthy one if any,
  // else (panic mode) an ejected one; nullptr when every host was tried.
  Host* Pick(std::string_view hash_key, std::span<Host* const> tried, Clock::time_point now) const;
};

// Thread-safe. Updates (from the membership thread) are serialized and build
// the next generation, resolving names, without holding the lock readers
// (the proxy and admin threads) take: they only wait for the pointer swap.
class Pool : public MembershipListener {
 public:
  // `metrics` may be null (tests).
  Pool(PolicyKind policy, ProxyMetrics* metrics);

  void OnMembershipUpdate(const std::vector<MemberRecord>& added,
                          const std::vector<std::string>& removed) override;  // balancer::MembershipListener

  std::shared_ptr<const HostSet> Snapshot() const;
  // Bumped on every change; lets readers skip the lock when unchanged.
  uint64_t version() const { return version_.load(std::memory_order_acquire); }
  std::vector<MemberRecord> Records() const;
  PolicyKind policy() const { return policy_; }

 private:
  // Hosts for `records`; the ones whose host does not resolve are logged and left out.
  std::vector<std::shared_ptr<Host>> MakeHosts(const std::vector<MemberRecord>& records) const;

  const PolicyKind policy_;
  ProxyMetrics* metrics_;
  std::mutex update_mu_;                    // serializes OnMembershipUpdate
  mutable std::mutex mu_;
  std::shared_ptr<const HostSet> current_;  // guarded by mu_
  std::atomic<uint64_t> version_{0};
  uint64_t seed_ = 0x9e3779b97f4a7c15ULL;   // guarded by update_mu_
};

// Resolves a member's host (IP literal, or a name through getaddrinfo; IPv4
// preferred). Blocking; false when it cannot be resolved.
bool ResolveMember(const serverset::Member& member, boost::asio::ip::tcp::endpoint* out);

}  // namespace webtier::balancer
