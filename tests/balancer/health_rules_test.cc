// Unit tests of the pure health, outlier, slow-start and locality rules
// (health_rules.h) and of how a MemberSet applies them (ejection cap, panic,
// locality split, slow start in the policies).
#include <gtest/gtest.h>

#include <map>
#include <memory>

#include "webtier/balancer/health/health_rules.h"
#include "webtier/balancer/upstream/pool.h"

namespace webtier::balancer {
namespace {

using namespace std::chrono_literals;

TEST(HealthTracker, FirstPassAdmitsAPendingMember) {
  HealthTracker t(2, 3);
  EXPECT_EQ(t.Next(Health::kPending, true), Health::kHealthy);
}

TEST(HealthTracker, PendingMemberTurnsUnhealthyAfterTheUnhealthyThreshold) {
  HealthTracker t(2, 3);
  EXPECT_EQ(t.Next(Health::kPending, false), Health::kPending);
  EXPECT_EQ(t.Next(Health::kPending, false), Health::kPending);
  EXPECT_EQ(t.Next(Health::kPending, false), Health::kUnhealthy);
}

TEST(HealthTracker, HealthyNeedsThresholdFailuresInARow) {
  HealthTracker t(2, 3);
  Health h = Health::kHealthy;
  h = t.Next(h, false);
  h = t.Next(h, false);
  EXPECT_EQ(h, Health::kHealthy);
  h = t.Next(h, true);  // the run is broken
  h = t.Next(h, false);
  h = t.Next(h, false);
  EXPECT_EQ(h, Health::kHealthy);
  h = t.Next(h, false);
  EXPECT_EQ(h, Health::kUnhealthy);
}

TEST(HealthTracker, UnhealthyNeedsThresholdPassesInARow) {
  HealthTracker t(2, 1);
  Health h = t.Next(Health::kHealthy, false);
  ASSERT_EQ(h, Health::kUnhealthy);
  h = t.Next(h, true);
  EXPECT_EQ(h, Health::kUnhealthy);
  h = t.Next(h, false);
  h = t.Next(h, true);
  EXPECT_EQ(h, Health::kUnhealthy) << "a failure restarts the run of passes";
  h = t.Next(h, true);
  EXPECT_EQ(h, Health::kHealthy);
}

TEST(HealthNames, AsStatusShowsThem) {
  EXPECT_STREQ(HealthName(Health::kUnchecked), "unchecked");
  EXPECT_STREQ(HealthName(Health::kPending), "unchecked");
  EXPECT_STREQ(HealthName(Health::kHealthy), "healthy");
  EXPECT_STREQ(HealthName(Health::kUnhealthy), "unhealthy");
  EXPECT_TRUE(HealthAdmits(Health::kUnchecked));
  EXPECT_FALSE(HealthAdmits(Health::kPending));
  EXPECT_STREQ(CheckResultName(CheckResult::kTimeout), "timeout");
}

TEST(EjectionAllowed, NeverMoreThanThePercentNorTheLastMember) {
  EXPECT_TRUE(EjectionAllowed(0, 3, 50));   // 1/3
  EXPECT_FALSE(EjectionAllowed(1, 3, 50));  // 2/3 > 50%
  EXPECT_TRUE(EjectionAllowed(0, 2, 50));   // 1/2
  EXPECT_FALSE(EjectionAllowed(0, 1, 100)) << "the last member stays";
  EXPECT_FALSE(EjectionAllowed(1, 2, 100)) << "the last member stays";
  EXPECT_TRUE(EjectionAllowed(8, 10, 100));
  EXPECT_FALSE(EjectionAllowed(9, 10, 100));
  EXPECT_FALSE(EjectionAllowed(0, 10, 0));
  EXPECT_TRUE(EjectionAllowed(4, 10, 50));
  EXPECT_FALSE(EjectionAllowed(5, 10, 50));
}

TEST(OutlierEjectionTime, BaseTimesCountCappedAtTen) {
  EXPECT_EQ(OutlierEjectionTime(30s, 1), 30s);
  EXPECT_EQ(OutlierEjectionTime(30s, 3), 90s);
  EXPECT_EQ(OutlierEjectionTime(30s, 10), 300s);
  EXPECT_EQ(OutlierEjectionTime(30s, 50), 300s);
  EXPECT_EQ(OutlierEjectionTime(30s, 0), 30s);
}

TEST(SlowStartFactor, RampsFromTenPercentToFull) {
  EXPECT_DOUBLE_EQ(SlowStartFactor(0s, 10s), 0.1);
  EXPECT_NEAR(SlowStartFactor(5s, 10s), 0.55, 1e-9);
  EXPECT_DOUBLE_EQ(SlowStartFactor(10s, 10s), 1.0);
  EXPECT_DOUBLE_EQ(SlowStartFactor(20s, 10s), 1.0);
  EXPECT_DOUBLE_EQ(SlowStartFactor(0s, 0ms), 1.0) << "off";
}

TEST(LocalShare, OneAndAHalfTimesTheHealthyFractionAtMostAll) {
  EXPECT_DOUBLE_EQ(LocalShare(3, 3), 1.0);
  EXPECT_DOUBLE_EQ(LocalShare(4, 5), 1.0);  // 1.4 x 4/5 > 1
  EXPECT_NEAR(LocalShare(2, 3), 1.4 * 2 / 3, 1e-9);
  EXPECT_NEAR(LocalShare(1, 3), 1.4 / 3, 1e-9);
  EXPECT_DOUBLE_EQ(LocalShare(0, 3), 0.0);
  EXPECT_DOUBLE_EQ(LocalShare(0, 0), 0.0);
}

TEST(MemberOutlier, RunOfFailuresReachesTheThresholdOnce) {
  Member h({}, {});
  EXPECT_FALSE(h.RecordOutlierFailure(3));
  EXPECT_FALSE(h.RecordOutlierFailure(3));
  EXPECT_TRUE(h.RecordOutlierFailure(3));
  EXPECT_FALSE(h.RecordOutlierFailure(3)) << "the run starts again";
  h.RecordSuccess();
  EXPECT_FALSE(h.RecordOutlierFailure(3));
  EXPECT_FALSE(h.RecordOutlierFailure(3));
  EXPECT_TRUE(h.RecordOutlierFailure(3));
  EXPECT_FALSE(h.RecordOutlierFailure(0)) << "0 = off";
}

MemberRecord Record(const std::string& id, const std::string& zone = "") {
  MemberRecord r;
  r.key = "member_" + id;
  r.member.id = id;
  r.member.host = "127.0.0.1";
  r.member.port = 1000;
  r.member.zone = zone;
  return r;
}

std::shared_ptr<const MemberSet> PoolOf(Pool& pool, const std::vector<MemberRecord>& records) {
  pool.OnMembershipUpdate(records, {});
  return pool.Snapshot();
}

TEST(MemberSetEjection, CapHoldsAcrossTheGeneration) {
  Pool pool(PolicyKind::kRoundRobin, nullptr, PoolOptions{.max_ejection_percent = 50});
  auto set = PoolOf(pool, {Record("a"), Record("b"), Record("c"), Record("d")});
  const auto now = Clock::now();
  EXPECT_TRUE(set->TryEject(*set->members[0], now, 1s));
  EXPECT_TRUE(set->TryEject(*set->members[1], now, std::nullopt));
  EXPECT_FALSE(set->TryEject(*set->members[2], now, 1s)) << "3 of 4 would pass 50%";
  EXPECT_FALSE(set->members[2]->Ejected(now));
  EXPECT_EQ(set->members[0]->ejections(), 1u);
}

TEST(MemberSetEjection, NeverTheLastMember) {
  Pool pool(PolicyKind::kRoundRobin, nullptr, PoolOptions{.max_ejection_percent = 100});
  auto set = PoolOf(pool, {Record("a")});
  EXPECT_FALSE(set->TryEject(*set->members[0], Clock::now(), std::nullopt));
}

TEST(MemberSetPick, PendingAndUnhealthyMembersGetNoTrafficUntilPanic) {
  Pool pool(PolicyKind::kRoundRobin, nullptr, PoolOptions{.initial_health = Health::kPending});
  auto set = PoolOf(pool, {Record("a"), Record("b"), Record("c")});
  const auto now = Clock::now();
  // Nothing checked yet: panic, every member may be picked.
  std::map<std::string, int> counts;
  for (int i = 0; i < 30; ++i) counts[set->Pick("/", {}, now)->serverset().id]++;
  EXPECT_EQ(counts.size(), 3u);
  set->members[0]->SetHealth(Health::kHealthy, now);
  set->members[1]->SetHealth(Health::kUnhealthy, now);
  counts.clear();
  for (int i = 0; i < 30; ++i) counts[set->Pick("/", {}, now)->serverset().id]++;
  EXPECT_EQ(counts["a"], 30) << "only the member that passed";
  Member* tried[] = {set->members[0].get()};
  EXPECT_NE(set->Pick("/", tried, now), nullptr) << "a retry in panic still finds a member";
}

TEST(MemberSetPick, LocalZoneFirstAndSpillOverByTheLocalShare) {
  Pool pool(PolicyKind::kRoundRobin, nullptr, PoolOptions{.zone = "east"});
  auto set = PoolOf(pool, {Record("e1", "east"), Record("e2", "east"), Record("e3", "east"), Record("w1", "west"),
                           Record("w2", "west")});
  const auto now = Clock::now();
  auto local_fraction = [&](int n) {
    int local = 0;
    for (int i = 0; i < n; ++i) local += set->Local(*set->Pick("/", {}, now)) ? 1 : 0;
    return static_cast<double>(local) / n;
  };
  EXPECT_DOUBLE_EQ(local_fraction(300), 1.0);
  set->members[0]->SetHealth(Health::kUnhealthy, now);  // 2 of 3: 1.4 x 2/3 = 0.93 local
  double f = local_fraction(4000);
  EXPECT_GT(f, 0.89);
  EXPECT_LT(f, 0.97);
  set->members[1]->SetHealth(Health::kUnhealthy, now);  // 1 of 3: 1.4/3 = 0.47 local
  f = local_fraction(4000);
  EXPECT_GT(f, 0.40);
  EXPECT_LT(f, 0.54);
  set->members[2]->SetHealth(Health::kUnhealthy, now);
  EXPECT_DOUBLE_EQ(local_fraction(300), 0.0) << "no healthy local member: all to the other zone";
  set->members[3]->SetHealth(Health::kUnhealthy, now);
  set->members[4]->SetHealth(Health::kUnhealthy, now);
  EXPECT_DOUBLE_EQ(local_fraction(300), 1.0) << "everything unhealthy: panic in the local zone";
}

TEST(SlowStart, RampingMemberGetsAboutItsFactorOfAShare) {
  for (PolicyKind kind : {PolicyKind::kRoundRobin, PolicyKind::kWeightedRoundRobin, PolicyKind::kLeastRequest}) {
    Pool pool(kind, nullptr, PoolOptions{.slow_start = 10s});
    auto set = PoolOf(pool, {Record("a"), Record("b")});
    const auto now = Clock::now() + 20s;  // both ramped up
    set->members[1]->SetHealth(Health::kUnhealthy, now);
    set->members[1]->SetHealth(Health::kHealthy, now);  // just became healthy again: 10%
    std::map<std::string, int> counts;
    for (int i = 0; i < 4000; ++i) counts[set->Pick("/", {}, now)->serverset().id]++;
    const double share = counts["b"] / 4000.0;
    // Full share would be 0.5; at 10% of it b gets about 1/11 of the picks.
    EXPECT_GT(share, 0.03) << PolicyName(kind);
    EXPECT_LT(share, 0.16) << PolicyName(kind);
    counts.clear();
    for (int i = 0; i < 4000; ++i) counts[set->Pick("/", {}, now + 10s)->serverset().id]++;
    EXPECT_NEAR(counts["b"] / 4000.0, 0.5, 0.05) << PolicyName(kind) << " after the ramp";
  }
}

}  // namespace
}  // namespace webtier::balancer
