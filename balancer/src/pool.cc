// Pool generations and member address resolution.
#include "webtier/balancer/pool.h"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "webtier/balancer/proxy_metrics.h"
#include "webtier/common/log.h"

namespace webtier::balancer {

namespace asio = boost::asio;
using asio::ip::tcp;

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

Host* HostSet::Pick(std::string_view hash_key, std::span<Host* const> tried, Clock::time_point now) const {
  if (!policy) return nullptr;
  HostFilter filter{tried, now, false};
  if (Host* h = policy->Pick(hash_key, filter)) return h;
  filter.allow_ejected = true;  // panic mode: never eject the whole pool
  return policy->Pick(hash_key, filter);
}

Pool::Pool(PolicyKind policy, ProxyMetrics* metrics) : policy_(policy), metrics_(metrics) {
  auto empty = std::make_shared<HostSet>();
  empty->policy = MakePolicy(policy_, {}, seed_);
  current_ = std::move(empty);
}

std::vector<std::shared_ptr<Host>> Pool::MakeHosts(const std::vector<MemberRecord>& records) const {
  std::vector<std::shared_ptr<Host>> out;
  out.reserve(records.size());
  for (const auto& rec : records) {
    tcp::endpoint ep;
    if (!ResolveMember(rec.member, &ep)) {
      log::Warn("pool", "member host does not resolve; ignored").kv("member", rec.member.id).kv("host", rec.member.host);
      continue;
    }
    std::array<prometheus::Counter*, static_cast<size_t>(Outcome::kCount)> counters{};
    if (metrics_) counters = metrics_->UpstreamCounters(rec.member.id);
    out.push_back(std::make_shared<Host>(rec, ep, counters));
  }
  return out;
}

void Pool::OnMembershipUpdate(const std::vector<MemberRecord>& added, const std::vector<std::string>& removed) {
  if (added.empty() && removed.empty()) return;
  std::lock_guard update(update_mu_);  // one update at a time; readers only wait for the final swap
  std::vector<std::shared_ptr<Host>> fresh = MakeHosts(added);  // may block on DNS: no reader waits for it
  std::map<std::string, std::shared_ptr<Host>> hosts;
  for (const auto& h : Snapshot()->hosts) hosts.emplace(h->key(), h);
  for (const auto& key : removed) {
    auto it = hosts.find(key);
    if (it == hosts.end()) continue;
    it->second->MarkRemoved();
    log::Info("pool", "member removed").kv("member", it->second->member().id).kv("address", it->second->member().Address());
    hosts.erase(it);
  }
  for (auto& h : fresh) {
    if (auto it = hosts.find(h->key()); it != hosts.end()) it->second->MarkRemoved();
    log::Info("pool", "member added").kv("member", h->member().id).kv("address", h->member().Address());
    hosts[h->key()] = std::move(h);
  }
  auto next = std::make_shared<HostSet>();
  next->hosts.reserve(hosts.size());
  for (auto& [key, h] : hosts) next->hosts.push_back(h);  // ordered by znode name: stable across updates
  std::vector<Host*> raw;
  raw.reserve(next->hosts.size());
  for (auto& h : next->hosts) raw.push_back(h.get());
  seed_ = seed_ * 6364136223846793005ULL + 1442695040888963407ULL;
  next->policy = MakePolicy(policy_, std::move(raw), seed_);
  const size_t members = next->hosts.size();
  {
    std::lock_guard lock(mu_);
    current_ = std::move(next);
    version_.fetch_add(1, std::memory_order_acq_rel);
  }
  if (metrics_) metrics_->pool_updates.Increment();
  log::Info("pool", "pool updated").kv("members", members);
}

std::shared_ptr<const HostSet> Pool::Snapshot() const {
  std::lock_guard lock(mu_);
  return current_;
}

std::vector<MemberRecord> Pool::Records() const {
  auto snap = Snapshot();
  std::vector<MemberRecord> out;
  for (const auto& h : snap->hosts) out.push_back(h->record());
  return out;
}

}  // namespace webtier::balancer
