// Pool generations and member address resolution.
#include "webtier/balancer/upstream/pool.h"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "webtier/balancer/telemetry/proxy_metrics.h"
#include "webtier/common/log.h"

namespace webtier::balancer {

namespace asio = boost::asio;
using asio::ip::tcp;

IpAddress ToIpAddress(const asio::ip::address& address) {
  if (address.is_v4()) return IpAddress::FromV4Bytes(address.to_v4().to_bytes());
  return IpAddress::FromV6Bytes(address.to_v6().to_bytes());
}

bool ResolveMember(const serverset::Member& member, tcp::endpoint* out) {
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(member.host, ec);
  if (!ec) {
    *out = tcp::endpoint(addr, member.port);
    return true;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(member.host.c_str(), nullptr, &hints, &res) != 0 || res == nullptr) return false;
  const addrinfo* pick = res;
  for (const addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_family == AF_INET) { pick = ai; break; }
  }
  tcp::endpoint ep;
  std::memcpy(ep.data(), pick->ai_addr, pick->ai_addrlen);
  ::freeaddrinfo(res);
  ep.port(member.port);
  *out = ep;
  return true;
}

Member* MemberSet::PickIn(Policy& p, std::string_view hash_key, std::span<Member* const> tried, Clock::time_point now,
                      bool panic) const {
  return p.Pick(hash_key, MemberFilter{tried, now, panic, options.slow_start});
}

Member* MemberSet::Pick(std::string_view hash_key, std::span<Member* const> tried, Clock::time_point now) const {
  if (!policy) return nullptr;
  if (!local_policy) {
    if (Member* h = PickIn(*policy, hash_key, tried, now, false)) return h;
    return PickIn(*policy, hash_key, tried, now, true);  // panic mode: never eject the whole pool
  }
  size_t routable = 0;
  for (const Member* h : local_hosts) routable += h->Routable(now) ? 1 : 0;
  const double share = LocalShare(routable, local_hosts.size());
  const bool local_first = share >= 1.0 || (share > 0.0 && RandomUnit() < share);
  Policy& first = local_first ? *local_policy : *remote_policy;
  Policy& second = local_first ? *remote_policy : *local_policy;
  if (Member* h = PickIn(first, hash_key, tried, now, false)) return h;
  if (Member* h = PickIn(second, hash_key, tried, now, false)) return h;
  // No routable member in either zone: panic, in the local zone when it has
  // members, else among the others.
  Policy& near = local_hosts.empty() ? *remote_policy : *local_policy;
  Policy& far = local_hosts.empty() ? *local_policy : *remote_policy;
  if (Member* h = PickIn(near, hash_key, tried, now, true)) return h;
  return PickIn(far, hash_key, tried, now, true);
}

bool MemberSet::TryEject(Member& member, Clock::time_point now, std::optional<std::chrono::milliseconds> duration) const {
  MutexLock lock(&eject_mu_);
  if (member.Ejected(now)) return false;
  size_t ejected = 0;
  for (const auto& h : members) ejected += h->Ejected(now) ? 1 : 0;
  if (!EjectionAllowed(ejected, members.size(), options.max_ejection_percent)) return false;
  return duration ? member.Eject(now, *duration) : member.Eject(now);
}

Pool::Pool(PolicyKind policy, ProxyMetrics* metrics, PoolOptions options)
    : policy_(policy), metrics_(metrics), options_(std::move(options)) {
  current_ = MakeMemberSet({});
}

std::shared_ptr<MemberSet> Pool::MakeMemberSet(std::vector<std::shared_ptr<Member>> members) {
  auto next = std::make_shared<MemberSet>();
  next->options = options_;
  next->members = std::move(members);
  std::vector<Member*> all, local, remote;
  for (auto& h : next->members) {
    all.push_back(h.get());
    (next->Local(*h) ? local : remote).push_back(h.get());
  }
  seed_ = seed_ * 6364136223846793005ULL + 1442695040888963407ULL;
  next->policy = MakePolicy(policy_, std::move(all), seed_);
  if (!options_.zone.empty()) {
    next->local_hosts = local;
    next->local_policy = MakePolicy(policy_, std::move(local), seed_ ^ 1);
    next->remote_policy = MakePolicy(policy_, std::move(remote), seed_ ^ 2);
  }
  return next;
}

std::vector<std::shared_ptr<Member>> Pool::MakeMembers(const std::vector<MemberRecord>& records) const {
  std::vector<std::shared_ptr<Member>> out;
  out.reserve(records.size());
  for (const auto& rec : records) {
    tcp::endpoint ep;
    if (!ResolveMember(rec.member, &ep)) {
      log::Warn("pool", "member host does not resolve; ignored").kv("member", rec.member.id).kv("host", rec.member.host);
      continue;
    }
    if (std::string why = options_.member_allow.Refusal(ToIpAddress(ep.address())); !why.empty()) {
      log::Warn("pool", "member refused by --member-allow; ignored")
          .kv("member", rec.member.id)
          .kv("znode", rec.key)
          .kv("host", rec.member.host)
          .kv("address", ep.address().to_string())
          .kv("reason", why);
      if (metrics_) metrics_->refused_members.Increment();
      continue;
    }
    std::array<prometheus::Counter*, static_cast<size_t>(Outcome::kCount)> counters{};
    if (metrics_) counters = metrics_->UpstreamCounters(rec.member.id);
    out.push_back(std::make_shared<Member>(rec, ep, counters, options_.initial_health));
  }
  return out;
}

void Pool::OnMembershipUpdate(const std::vector<MemberRecord>& added, const std::vector<std::string>& removed) {
  if (added.empty() && removed.empty()) return;
  MutexLock update(&update_mu_);  // one update at a time; readers only wait for the final swap
  std::vector<std::shared_ptr<Member>> fresh = MakeMembers(added);  // may block on DNS: no reader waits for it
  std::map<std::string, std::shared_ptr<Member>> by_key;
  for (const auto& h : Snapshot()->members) by_key.emplace(h->key(), h);
  for (const auto& key : removed) {
    auto it = by_key.find(key);
    if (it == by_key.end()) continue;
    it->second->MarkRemoved();
    log::Info("pool", "member removed").kv("member", it->second->serverset().id).kv("address", it->second->serverset().Address());
    by_key.erase(it);
  }
  for (auto& h : fresh) {
    if (auto it = by_key.find(h->key()); it != by_key.end()) it->second->MarkRemoved();
    log::Info("pool", "member added").kv("member", h->serverset().id).kv("address", h->serverset().Address());
    by_key[h->key()] = std::move(h);
  }
  std::vector<std::shared_ptr<Member>> ordered;
  ordered.reserve(by_key.size());
  for (auto& [key, h] : by_key) ordered.push_back(h);  // ordered by znode name: stable across updates
  std::shared_ptr<MemberSet> next = MakeMemberSet(std::move(ordered));
  const size_t members = next->members.size();
  {
    MutexLock lock(&mu_);
    current_ = std::move(next);
    version_.fetch_add(1, std::memory_order_acq_rel);
  }
  if (metrics_) metrics_->pool_updates.Increment();
  log::Info("pool", "pool updated").kv("members", members);
  if (update_hook_) update_hook_();
}

void Pool::SetUpdateHook(std::function<void()> hook) {
  MutexLock update(&update_mu_);
  update_hook_ = std::move(hook);
}

std::shared_ptr<const MemberSet> Pool::Snapshot() const {
  MutexLock lock(&mu_);
  return current_;
}

std::vector<MemberRecord> Pool::Records() const {
  auto snap = Snapshot();
  std::vector<MemberRecord> out;
  for (const auto& h : snap->members) out.push_back(h->record());
  return out;
}

}  // namespace webtier::balancer
