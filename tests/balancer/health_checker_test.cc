// Unit tests of the active health checker (health_checker.h) against members
// started in-process: an EchoBackend that answers (2xx, or a chosen status),
// a RawMember that accepts and never answers, a free port that refuses.
// Time between checks is ManualTime's: the interval is long (10 s) and the
// tests advance the balancer's clock instead of sleeping; the check timeout
// is the stream's own, in real time.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "echo_backend.h"
#include "loopback_member.h"
#include "proxy_fixture.h"
#include "webtier/balancer/clock.h"
#include "webtier/balancer/health/health_checker.h"
#include "webtier/balancer/telemetry/proxy_metrics.h"
#include "webtier/balancer/upstream/pool.h"
#include "webtier/monitoring/metrics.h"
#include "webtier/testing/harness.h"

namespace webtier::balancer {
namespace {

using namespace std::chrono_literals;
using testing::EchoBackend;
using testing::WaitFor;

class HealthCheckerTest : public ::testing::Test {
 protected:
  HealthCheckerTest() {
    options_.path = "/status/200";
    options_.interval_ms = 10000;  // never reached in real time by a test
    options_.timeout_ms = 200;
    options_.healthy_threshold = 2;
    options_.unhealthy_threshold = 3;
  }

  void Start() {
    pool_ = std::make_unique<Pool>(PolicyKind::kRoundRobin, &metrics_, PoolOptions::From(options_));
    checker_ = std::make_unique<HealthChecker>(options_, *pool_, &metrics_);
    checker_->Start();
  }
  void Add(const std::string& id, uint16_t port) { pool_->OnMembershipUpdate({LoopbackMember(id, port)}, {}); }
  void Remove(const std::string& id) { pool_->OnMembershipUpdate({}, {LoopbackMember(id, 0).key}); }

  std::shared_ptr<Member> Find(const std::string& id) const {
    for (const auto& m : pool_->Snapshot()->members) {
      if (m->serverset().id == id) return m;
    }
    return nullptr;
  }
  Health HealthOf(const std::string& id) const {
    const auto m = Find(id);
    return m ? m->health() : Health::kUnchecked;
  }
  // balancer_health_checks_total of `id`: with `result`, or all of them.
  double Checks(const std::string& id, std::optional<std::string> result = std::nullopt) {
    const std::string text = registry_.Render();
    if (result) return testing::MetricValue(text, "balancer_health_checks_total", {{"member", id}, {"result", *result}}).value_or(0);
    double sum = 0;
    for (const char* r : {"pass", "fail", "timeout"})
      sum += testing::MetricValue(text, "balancer_health_checks_total", {{"member", id}, {"result", r}}).value_or(0);
    return sum;
  }
  // Waits (real time) until `id` has had `n` checks in all.
  [[nodiscard]] bool WaitChecks(const std::string& id, double n, std::chrono::milliseconds timeout = 3s) {
    return WaitFor([&] { return Checks(id) >= n; }, timeout);
  }
  [[nodiscard]] bool WaitHealth(const std::string& id, Health health) {
    return WaitFor([&] { return HealthOf(id) == health; }, 3s);
  }
  // Past the longest interval (10% jitter) since the last check started.
  void NextInterval() { time_.Advance(std::chrono::milliseconds(options_.interval_ms * 11 / 10 + 1)); }
  // With every check of `id` failing: pending through each failure short of
  // the unhealthy threshold (an interval advanced after each), unhealthy at it.
  void ExpectUnhealthyAtTheThreshold(const std::string& id) {
    for (int i = 1; i < options_.unhealthy_threshold; ++i) {
      ASSERT_TRUE(WaitChecks(id, i));
      EXPECT_EQ(HealthOf(id), Health::kPending) << "after " << i << " failures";
      NextInterval();
    }
    ASSERT_TRUE(WaitChecks(id, options_.unhealthy_threshold));
    EXPECT_TRUE(WaitHealth(id, Health::kUnhealthy));
  }

  // Before the checker: its reactor's waits are capped from its first one.
  ManualTime time_;
  metrics::Registry registry_{"balancer", "test"};
  ProxyMetrics metrics_{registry_.prom()};
  HealthOptions options_;
  std::unique_ptr<Pool> pool_;
  std::unique_ptr<HealthChecker> checker_;
};

TEST_F(HealthCheckerTest, MembersAreCheckedAtOnce) {
  EchoBackend a("a"), b("b");
  Start();
  Add("a", a.port());
  // No time advanced: the first check of a new member does not wait an interval.
  ASSERT_TRUE(WaitChecks("a", 1));
  EXPECT_TRUE(WaitHealth("a", Health::kHealthy));  // one pass admits a pending member
  Add("b", b.port());
  ASSERT_TRUE(WaitChecks("b", 1));
  EXPECT_TRUE(WaitHealth("b", Health::kHealthy));
  EXPECT_EQ(Find("b")->last_check(), CheckResult::kPass);
  // And no second check of either without the interval passing.
  EXPECT_FALSE(WaitFor([&] { return Checks("a") > 1 || Checks("b") > 1; }, 200ms));
}

TEST_F(HealthCheckerTest, MembersInThePoolAtStartAreCheckedAtOnce) {
  EchoBackend a("a");
  pool_ = std::make_unique<Pool>(PolicyKind::kRoundRobin, &metrics_, PoolOptions::From(options_));
  Add("a", a.port());
  ASSERT_EQ(HealthOf("a"), Health::kPending);  // no traffic before a pass
  checker_ = std::make_unique<HealthChecker>(options_, *pool_, &metrics_);
  checker_->Start();
  ASSERT_TRUE(WaitChecks("a", 1));
  EXPECT_TRUE(WaitHealth("a", Health::kHealthy));
  EXPECT_EQ(Checks("a", "pass"), 1);
}

TEST_F(HealthCheckerTest, ChecksAreSpacedByTheIntervalOfTheBalancersClock) {
  EchoBackend a("a");
  Start();
  Add("a", a.port());
  ASSERT_TRUE(WaitChecks("a", 1));
  time_.Advance(9s);  // short of the 10 s interval
  EXPECT_FALSE(WaitChecks("a", 2, 200ms));
  time_.Advance(2s + 1ms);  // past 10 s plus the 10% jitter
  ASSERT_TRUE(WaitChecks("a", 2));
  EXPECT_FALSE(WaitChecks("a", 3, 100ms)) << "one check per interval";
  for (int i = 3; i <= 5; ++i) {
    NextInterval();
    ASSERT_TRUE(WaitChecks("a", i));
  }
  EXPECT_EQ(Checks("a", "pass"), 5);
  EXPECT_EQ(HealthOf("a"), Health::kHealthy);
}

TEST_F(HealthCheckerTest, A5xxMemberTurnsUnhealthyAfterTheUnhealthyThreshold) {
  options_.path = "/status/503";
  EchoBackend a("a");
  Start();
  Add("a", a.port());
  ASSERT_NO_FATAL_FAILURE(ExpectUnhealthyAtTheThreshold("a"));
  EXPECT_EQ(Find("a")->last_check(), CheckResult::kFail);
  EXPECT_EQ(Checks("a", "fail"), options_.unhealthy_threshold);
  EXPECT_EQ(Checks("a", "pass"), 0);
}

TEST_F(HealthCheckerTest, ARefusingMemberTurnsUnhealthyAfterTheUnhealthyThreshold) {
  Start();
  Add("a", testing::FreePort());  // nobody listens there
  ASSERT_NO_FATAL_FAILURE(ExpectUnhealthyAtTheThreshold("a"));
  EXPECT_EQ(Checks("a", "fail"), options_.unhealthy_threshold);
}

TEST_F(HealthCheckerTest, AHangingMemberTimesOutAndTurnsUnhealthy) {
  options_.timeout_ms = 100;
  RawMember hanging;  // accepts, reads nothing, never answers
  Start();
  const auto t0 = std::chrono::steady_clock::now();
  Add("a", hanging.port());
  ASSERT_TRUE(WaitChecks("a", 1));
  // Cut by --health-timeout-ms (real time), not by anything longer.
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, 90ms);
  EXPECT_LT(took, 2s);
  EXPECT_EQ(Checks("a", "timeout"), 1);
  EXPECT_EQ(Find("a")->last_check(), CheckResult::kTimeout);
  ASSERT_NO_FATAL_FAILURE(ExpectUnhealthyAtTheThreshold("a"));
  EXPECT_EQ(Checks("a", "timeout"), options_.unhealthy_threshold);
}

TEST_F(HealthCheckerTest, AMemberThatGoesAwayAndComesBackFollowsTheThresholds) {
  auto a = std::make_unique<EchoBackend>("a");
  const uint16_t port = a->port();
  Start();
  Add("a", port);
  ASSERT_TRUE(WaitChecks("a", 1));
  ASSERT_TRUE(WaitHealth("a", Health::kHealthy));

  a = nullptr;  // down: the kept-alive check connection closes, then connects are refused
  int checks = 1;
  for (int i = 1; i <= options_.unhealthy_threshold; ++i) {
    EXPECT_EQ(HealthOf("a"), Health::kHealthy) << "after " << i - 1 << " failures";
    NextInterval();
    ASSERT_TRUE(WaitChecks("a", ++checks));
  }
  EXPECT_TRUE(WaitHealth("a", Health::kUnhealthy));
  EXPECT_EQ(Checks("a", "fail"), options_.unhealthy_threshold);

  a = std::make_unique<EchoBackend>("a", port);  // back on the same port
  for (int i = 1; i <= options_.healthy_threshold; ++i) {
    EXPECT_EQ(HealthOf("a"), Health::kUnhealthy) << "after " << i - 1 << " passes";
    NextInterval();
    ASSERT_TRUE(WaitChecks("a", ++checks));
  }
  EXPECT_TRUE(WaitHealth("a", Health::kHealthy));
  EXPECT_EQ(Checks("a", "pass"), 1 + options_.healthy_threshold);
}

TEST_F(HealthCheckerTest, AMemberLeavingThePoolEndsItsLoop) {
  EchoBackend a("a"), b("b");
  Start();
  Add("a", a.port());
  Add("b", b.port());
  ASSERT_TRUE(WaitChecks("a", 1));
  ASSERT_TRUE(WaitChecks("b", 1));
  std::weak_ptr<Member> gone = Find("a");
  ASSERT_FALSE(gone.expired());
  Remove("a");
  ASSERT_EQ(Find("a"), nullptr);
  // The loop ends at once, not when its interval is up: then nothing holds the member.
  EXPECT_TRUE(WaitFor([&] { return gone.expired(); }, 3s)) << "the check loop still holds the member";
  EXPECT_EQ(Checks("a"), 1);
  NextInterval();
  ASSERT_TRUE(WaitChecks("b", 2));
  NextInterval();
  ASSERT_TRUE(WaitChecks("b", 3));
  EXPECT_EQ(Checks("a"), 1) << "a removed member is not checked";
}

TEST_F(HealthCheckerTest, ACheckUnderWayIsAbandonedWhenItsMemberLeaves) {
  options_.timeout_ms = 10000;
  RawMember hanging;
  Start();
  Add("a", hanging.port());
  const int fd = hanging.Accept(3s);  // a check is under way, 10 s from its timeout
  ASSERT_GE(fd, 0);
  std::weak_ptr<Member> gone = Find("a");
  Remove("a");
  EXPECT_TRUE(WaitFor([&] { return gone.expired(); }, 2s)) << "the check waits for its timeout";
  EXPECT_EQ(Checks("a"), 0) << "an abandoned check is not counted";
  ::close(fd);
}

TEST_F(HealthCheckerTest, APoolThatOutlivesItsCheckerIsNotHookedToIt) {
  EchoBackend a("a"), b("b");
  Start();
  Add("a", a.port());
  ASSERT_TRUE(WaitChecks("a", 1));
  checker_ = nullptr;
  // The next update runs no hook of the destroyed checker (ASan would see it).
  Add("b", b.port());
  ASSERT_NE(Find("b"), nullptr);
  EXPECT_FALSE(WaitChecks("b", 1, 200ms));
}

TEST_F(HealthCheckerTest, StopIsPromptAndIdempotent) {
  options_.timeout_ms = 10000;
  RawMember hanging;
  Start();
  Add("a", hanging.port());
  const int fd = hanging.Accept(3s);  // a check is under way, 10 s from its timeout
  ASSERT_GE(fd, 0);
  const auto t0 = std::chrono::steady_clock::now();
  checker_->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  checker_->Stop();
  NextInterval();
  EXPECT_FALSE(WaitChecks("a", 1, 200ms)) << "no check finishes after Stop";
  checker_ = nullptr;  // and the destructor's Stop after that
  ::close(fd);
}

TEST_F(HealthCheckerTest, NothingRunsWhenChecksAreOff) {
  options_.path.clear();
  EchoBackend a("a");
  Start();
  Add("a", a.port());
  EXPECT_EQ(HealthOf("a"), Health::kUnchecked);  // traffic without checks
  EXPECT_FALSE(WaitChecks("a", 1, 200ms));
  checker_->Stop();
}

}  // namespace
}  // namespace webtier::balancer
