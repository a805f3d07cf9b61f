// The four load-balancing policies.
#include "webtier/balancer/upstream/policy.h"

#include <algorithm>
#include <limits>

namespace webtier::balancer {
namespace {

uint64_t Mix(uint64_t x) {  // splitmix64 finalizer
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

}  // namespace

bool MemberFilter::Admits(const Member& member) const {
  for (const Member* t : tried) {
    if (t == &member) return false;
  }
  return allow_ejected || member.Routable(now);
}

double RandomUnit() {
  thread_local uint64_t state = Mix(reinterpret_cast<uintptr_t>(&state) ^
                                    static_cast<uint64_t>(Clock::now().time_since_epoch().count()));
  state += 0x9e3779b97f4a7c15ULL;
  return static_cast<double>(Mix(state) >> 11) * 0x1.0p-53;
}

bool MemberFilter::Draws(const Member& member) const {
  if (!Admits(member)) return false;
  const double ramp = Ramp(member);
  return ramp >= 1.0 || RandomUnit() < ramp;
}

std::unique_ptr<Policy> MakePolicy(PolicyKind kind, std::vector<Member*> members, uint64_t seed) {
  switch (kind) {
    case PolicyKind::kRoundRobin: return std::make_unique<RoundRobinPolicy>(std::move(members));
    case PolicyKind::kWeightedRoundRobin: return std::make_unique<WeightedRoundRobinPolicy>(std::move(members));
    case PolicyKind::kLeastRequest: return std::make_unique<LeastRequestPolicy>(std::move(members), seed);
    case PolicyKind::kConsistentHash: return std::make_unique<ConsistentHashPolicy>(std::move(members));
  }
  return std::make_unique<RoundRobinPolicy>(std::move(members));
}

Member* RoundRobinPolicy::Pick(std::string_view, const MemberFilter& filter) {
  const size_t n = members_.size();
  if (n == 0) return nullptr;
  // A member that is passed over (ejected, unhealthy, tried, ramping) spends
  // its turn of the shared counter, so the others keep equal shares rather
  // than the next one in the list taking its turns too.
  uint64_t turn = 0;
  for (size_t i = 0; i < n; ++i) {
    turn = next_.fetch_add(1, std::memory_order_relaxed);
    if (Member* h = members_[turn % n]; filter.Draws(*h)) return h;
  }
  for (size_t i = 0; i < n; ++i) {  // only ramping members, or other threads took the turns
    if (Member* h = members_[(turn + i) % n]; filter.Admits(*h)) return h;
  }
  return nullptr;
}

WeightedRoundRobinPolicy::WeightedRoundRobinPolicy(std::vector<Member*> members)
    : members_(std::move(members)), current_(members_.size(), 0) {}

Member* WeightedRoundRobinPolicy::Pick(std::string_view, const MemberFilter& filter) {
  MutexLock lock(&mu_);
  int64_t total = 0;
  int best = -1;
  for (size_t i = 0; i < members_.size(); ++i) {
    if (!filter.Admits(*members_[i])) continue;
    // Weights in 1/1000 so a slow-start ramp scales them.
    const int64_t w = static_cast<int64_t>(static_cast<double>(members_[i]->serverset().weight) * 1000 * filter.Ramp(*members_[i]));
    current_[i] += w;
    total += w;
    if (best < 0 || current_[i] > current_[best]) best = static_cast<int>(i);
  }
  if (best < 0) return nullptr;
  current_[best] -= total;
  return members_[best];
}

Member* LeastRequestPolicy::Pick(std::string_view, const MemberFilter& filter) {
  thread_local std::vector<Member*> admitted;
  admitted.clear();
  Member* fallback = nullptr;  // a ramping member passed over, when no other is admitted
  for (Member* h : members_) {
    if (filter.Draws(*h)) admitted.push_back(h);
    else if (fallback == nullptr && filter.Admits(*h)) fallback = h;
  }
  if (admitted.empty()) return fallback;
  if (admitted.size() == 1) return admitted[0];
  const uint64_t r = Mix(seed_.fetch_add(0x9e3779b97f4a7c15ULL, std::memory_order_relaxed));
  const size_t n = admitted.size();
  const size_t a = r % n;
  const size_t b = (a + 1 + (r >> 32) % (n - 1)) % n;  // distinct from a
  Member* ha = admitted[a];
  Member* hb = admitted[b];
  const int fa = ha->in_flight.load(std::memory_order_relaxed);
  const int fb = hb->in_flight.load(std::memory_order_relaxed);
  if (fa != fb) return fa < fb ? ha : hb;
  return ((r >> 16) & 1) ? ha : hb;
}

uint64_t ConsistentHashPolicy::Hash(std::string_view data) {
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a, then mixed: FNV alone clusters on short keys
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return Mix(h);
}

ConsistentHashPolicy::ConsistentHashPolicy(std::vector<Member*> members) {
  for (Member* h : members) {
    const int points = std::max<int>(1, static_cast<int>(kVirtualNodes * static_cast<int64_t>(h->serverset().weight) / 100));
    // Points hang off the member id, so a member keeps its place across restarts.
    const std::string base = h->serverset().id.empty() ? h->serverset().Address() : h->serverset().id;
    for (int i = 0; i < points; ++i) ring_.emplace_back(Hash(base + "#" + std::to_string(i)), h);
  }
  std::sort(ring_.begin(), ring_.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  distinct_hosts_ = members.size();
}

Member* ConsistentHashPolicy::Pick(std::string_view hash_key, const MemberFilter& filter) {
  if (ring_.empty()) return nullptr;
  const uint64_t h = Hash(hash_key);
  auto it = std::lower_bound(ring_.begin(), ring_.end(), h,
                             [](const auto& point, uint64_t v) { return point.first < v; });
  size_t idx = static_cast<size_t>(it - ring_.begin()) % ring_.size();
  for (size_t i = 0; i < ring_.size(); ++i) {
    Member* member = ring_[(idx + i) % ring_.size()].second;
    if (filter.Admits(*member)) return member;
  }
  return nullptr;
}

}  // namespace webtier::balancer
