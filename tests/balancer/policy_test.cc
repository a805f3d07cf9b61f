// Unit tests of the load-balancing policies and the passive ejection back-off.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <set>

#include "webtier/balancer/upstream/policy.h"
#include "webtier/balancer/upstream/pool.h"

namespace webtier::balancer {
namespace {

std::shared_ptr<Member> MakeHost(const std::string& id, uint16_t port, uint32_t weight = 100) {
  MemberRecord r;
  r.key = "member_" + id;
  r.member.id = id;
  r.member.host = "127.0.0.1";
  r.member.port = port;
  r.member.weight = weight;
  return std::make_shared<Member>(r, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
}

struct Hosts {
  explicit Hosts(int n, std::vector<uint32_t> weights = {}) {
    for (int i = 0; i < n; ++i) {
      owned.push_back(MakeHost("h" + std::to_string(i), static_cast<uint16_t>(1000 + i),
                               weights.empty() ? 100 : weights[i]));
      raw.push_back(owned.back().get());
    }
  }
  std::vector<std::shared_ptr<Member>> owned;
  std::vector<Member*> raw;
};

MemberFilter Filter(std::span<Member* const> tried = {}) { return MemberFilter{tried, Clock::now(), false}; }

TEST(RoundRobinPolicy, EqualSharesWithinOneOverAnyRun) {
  Hosts h(3);
  RoundRobinPolicy p(h.raw);
  std::map<Member*, int> counts;
  for (int n = 1; n <= 100; ++n) {
    counts[p.Pick("/", Filter())]++;
    int lo = INT32_MAX, hi = 0;
    for (Member* x : h.raw) {
      lo = std::min(lo, counts[x]);
      hi = std::max(hi, counts[x]);
    }
    ASSERT_LE(hi - lo, 1) << "after " << n << " requests";
  }
}

TEST(RoundRobinPolicy, SkipsTriedAndEjectedHosts) {
  Hosts h(3);
  RoundRobinPolicy p(h.raw);
  const auto now = Clock::now();
  ASSERT_TRUE(h.raw[1]->Eject(now));
  for (int i = 0; i < 30; ++i) EXPECT_NE(p.Pick("/", Filter()), h.raw[1]);
  Member* tried[] = {h.raw[0], h.raw[2]};
  EXPECT_EQ(p.Pick("/", Filter(tried)), nullptr);
  MemberFilter panic{tried, now, true};
  EXPECT_EQ(p.Pick("/", panic), h.raw[1]);
}

TEST(WeightedRoundRobinPolicy, SmoothSharesFollowWeights) {
  Hosts h(3, {500, 100, 100});
  WeightedRoundRobinPolicy p(h.raw);
  std::string seq;
  for (int i = 0; i < 7; ++i) seq += p.Pick("/", Filter())->serverset().id.back();
  EXPECT_EQ(seq, "0010200");  // nginx's smooth order for 5:1:1
  std::map<Member*, int> counts;
  for (int i = 0; i < 700; ++i) counts[p.Pick("/", Filter())]++;
  EXPECT_EQ(counts[h.raw[0]], 500);
  EXPECT_EQ(counts[h.raw[1]], 100);
  EXPECT_EQ(counts[h.raw[2]], 100);
}

TEST(LeastRequestPolicy, PrefersTheLessLoadedHost) {
  Hosts h(2);
  LeastRequestPolicy p(h.raw, 42);
  h.raw[0]->in_flight = 10;
  for (int i = 0; i < 50; ++i) EXPECT_EQ(p.Pick("/", Filter()), h.raw[1]);
}

TEST(LeastRequestPolicy, EvenLoadSpreadsOverAllHosts) {
  Hosts h(4);
  LeastRequestPolicy p(h.raw, 7);
  std::map<Member*, int> counts;
  for (int i = 0; i < 4000; ++i) counts[p.Pick("/", Filter())]++;
  for (Member* x : h.raw) EXPECT_NEAR(counts[x], 1000, 200);
}

TEST(ConsistentHashPolicy, SamePathSameHostAndBalancedSpread) {
  Hosts h(3);
  ConsistentHashPolicy p(h.raw);
  std::map<Member*, int> counts;
  for (int i = 0; i < 3000; ++i) {
    const std::string path = "/api/item/" + std::to_string(i);
    Member* a = p.Pick(path, Filter());
    EXPECT_EQ(a, p.Pick(path, Filter()));
    counts[a]++;
  }
  for (Member* x : h.raw) EXPECT_NEAR(counts[x], 1000, 250);
}

TEST(ConsistentHashPolicy, RemovingAHostMovesOnlyItsPaths) {
  Hosts h(4);
  ConsistentHashPolicy before(h.raw);
  std::vector<Member*> three(h.raw.begin(), h.raw.begin() + 3);
  ConsistentHashPolicy after(three);
  for (int i = 0; i < 2000; ++i) {
    const std::string path = "/p/" + std::to_string(i);
    Member* a = before.Pick(path, Filter());
    if (a != h.raw[3]) {
      EXPECT_EQ(a, after.Pick(path, Filter())) << path;
    }
  }
}

TEST(Member, EjectionBackOffDoublesAndIsCapped) {
  auto h = MakeHost("x", 1);
  auto t = Clock::now();
  ASSERT_TRUE(h->Eject(t));
  EXPECT_FALSE(h->Eject(t));  // already ejected: not counted twice
  EXPECT_TRUE(h->Ejected(t + std::chrono::milliseconds(999)));
  EXPECT_FALSE(h->Ejected(t + std::chrono::milliseconds(1000)));
  t += std::chrono::seconds(1);
  ASSERT_TRUE(h->Eject(t));
  EXPECT_TRUE(h->Ejected(t + std::chrono::milliseconds(1999)));
  EXPECT_FALSE(h->Ejected(t + std::chrono::milliseconds(2000)));
  for (int i = 0; i < 10; ++i) {
    t = h->ejected_until();
    ASSERT_TRUE(h->Eject(t));
  }
  EXPECT_EQ(h->ejected_until() - t, std::chrono::seconds(30));
  h->RecordSuccess();
  t = h->ejected_until();
  ASSERT_TRUE(h->Eject(t));
  EXPECT_EQ(h->ejected_until() - t, std::chrono::seconds(1));
}

MemberRecord Record(const std::string& key, uint16_t port) {
  MemberRecord r;
  r.key = key;
  r.member.id = key;
  r.member.host = "127.0.0.1";
  r.member.port = port;
  return r;
}

TEST(Pool, AppliesDeltasAndMarksRemovedHosts) {
  Pool pool(PolicyKind::kRoundRobin, nullptr);
  EXPECT_TRUE(pool.Snapshot()->members.empty());
  const uint64_t v0 = pool.version();
  pool.OnMembershipUpdate({Record("a", 1), Record("b", 2)}, {});
  EXPECT_GT(pool.version(), v0);
  auto first = pool.Snapshot();
  ASSERT_EQ(first->members.size(), 2u);
  pool.OnMembershipUpdate({Record("c", 3)}, {"a"});
  auto second = pool.Snapshot();
  ASSERT_EQ(second->members.size(), 2u);
  EXPECT_TRUE(first->members[0]->removed());  // "a": in-flight users see it leave
  EXPECT_EQ(second->members[0]->key(), "b");
  EXPECT_EQ(second->members[1]->key(), "c");
  std::set<std::string> picked;
  for (int i = 0; i < 4; ++i) picked.insert(second->Pick("/", {}, Clock::now())->key());
  EXPECT_EQ(picked, (std::set<std::string>{"b", "c"}));
}

TEST(Pool, PanicModeUsesEjectedHostsRatherThanNone) {
  Pool pool(PolicyKind::kRoundRobin, nullptr);
  pool.OnMembershipUpdate({Record("a", 1), Record("b", 2)}, {});
  auto snap = pool.Snapshot();
  const auto now = Clock::now();
  for (auto& h : snap->members) h->Eject(now);
  EXPECT_NE(snap->Pick("/", {}, now), nullptr);
}

TEST(Pool, UnresolvableMemberIsIgnored) {
  Pool pool(PolicyKind::kRoundRobin, nullptr);
  MemberRecord bad = Record("bad", 1);
  bad.member.host = "no-such-host.invalid";
  pool.OnMembershipUpdate({bad, Record("ok", 2)}, {});
  ASSERT_EQ(pool.Snapshot()->members.size(), 1u);
  EXPECT_EQ(pool.Snapshot()->members[0]->key(), "ok");
}

}  // namespace
}  // namespace webtier::balancer
