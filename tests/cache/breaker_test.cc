// CircuitBreaker and SingleFlight with an injected clock; no sleeping.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "fakes.h"
#include "webtier/cache/circuit_breaker.h"
#include "webtier/cache/single_flight.h"

namespace webtier::cache {
namespace {

using State = CircuitBreaker::State;
using testing::FakeClock;

TEST(CircuitBreakerTest, OpensAfterConsecutiveFailuresOnly) {
  FakeClock clock;
  CircuitBreaker b(BreakerOptions{3, std::chrono::milliseconds(1000)}, &clock);
  b.RecordFailure();
  b.RecordFailure();
  b.RecordSuccess();  // resets the run
  b.RecordFailure();
  b.RecordFailure();
  EXPECT_EQ(b.state(), State::kClosed);
  EXPECT_TRUE(b.Allow());
  b.RecordFailure();
  EXPECT_EQ(b.state(), State::kOpen);
  EXPECT_FALSE(b.Allow());
  EXPECT_EQ(b.trips(), 1u);
}

TEST(CircuitBreakerTest, OneProbeAfterCooldownThenCloses) {
  FakeClock clock;
  CircuitBreaker b(BreakerOptions{1, std::chrono::milliseconds(1000)}, &clock);
  b.RecordFailure();
  clock.Advance(std::chrono::milliseconds(999));
  EXPECT_FALSE(b.Allow());
  clock.Advance(std::chrono::milliseconds(1));
  EXPECT_TRUE(b.Allow());  // the probe
  EXPECT_EQ(b.state(), State::kHalfOpen);
  EXPECT_FALSE(b.Allow());  // only one
  b.RecordSuccess();
  EXPECT_EQ(b.state(), State::kClosed);
  EXPECT_TRUE(b.Allow());
}

TEST(CircuitBreakerTest, FailedProbeReopensForAnotherCooldown) {
  FakeClock clock;
  CircuitBreaker b(BreakerOptions{1, std::chrono::milliseconds(1000)}, &clock);
  b.RecordFailure();
  clock.Advance(std::chrono::milliseconds(1000));
  ASSERT_TRUE(b.Allow());
  b.RecordFailure();
  EXPECT_EQ(b.state(), State::kOpen);
  EXPECT_EQ(b.trips(), 2u);
  clock.Advance(std::chrono::milliseconds(500));
  EXPECT_FALSE(b.Allow());
  clock.Advance(std::chrono::milliseconds(500));
  EXPECT_TRUE(b.Allow());
}

TEST(CircuitBreakerTest, ANewStoreIsProbedWithoutWaitingForTheCooldown) {
  FakeClock clock;
  uint64_t generation = 7;
  CircuitBreaker b(BreakerOptions{1, std::chrono::milliseconds(2000)}, &clock, [&] { return generation; });
  b.RecordFailure();
  EXPECT_FALSE(b.Allow());  // the same master: wait
  generation = 8;           // Sentinel promoted another one
  EXPECT_TRUE(b.Allow());   // the probe, at once
  EXPECT_FALSE(b.Allow());  // still only one
  b.RecordFailure();        // the new one fails too: a full cool-down for it
  EXPECT_FALSE(b.Allow());
  clock.Advance(std::chrono::milliseconds(2000));
  EXPECT_TRUE(b.Allow());
}

TEST(CircuitBreakerTest, ConcurrentUseIsSafe) {
  FakeClock clock;
  CircuitBreaker b(BreakerOptions{5, std::chrono::milliseconds(10)}, &clock);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10000; ++i) {
        if (b.Allow()) {
          if ((i + t) % 3 == 0) b.RecordFailure(); else b.RecordSuccess();
        }
        if (i % 100 == 0) clock.Advance(std::chrono::milliseconds(1));
      }
    });
  }
  for (auto& t : threads) t.join();
  SUCCEED();
}

TEST(SingleFlightTest, FirstJoinLeadsAndEveryoneGetsTheResult) {
  SingleFlight<int> flights;
  std::vector<int> got;
  EXPECT_TRUE(flights.Join("k", [&](const int& v) { got.push_back(v); }));
  EXPECT_FALSE(flights.Join("k", [&](const int& v) { got.push_back(v + 1); }));
  EXPECT_FALSE(flights.Join("k", nullptr));
  EXPECT_TRUE(flights.Join("other", nullptr));
  EXPECT_TRUE(flights.InFlight("k"));
  EXPECT_EQ(flights.Complete("k", 41), 2u);
  EXPECT_EQ(got, (std::vector<int>{41, 42}));
  EXPECT_FALSE(flights.InFlight("k"));
  EXPECT_TRUE(flights.Join("k", nullptr));  // a new flight
  EXPECT_EQ(flights.Complete("missing", 0), 0u);
}

TEST(SingleFlightTest, ConcurrentJoinsHaveExactlyOneLeader) {
  SingleFlight<int> flights;
  std::atomic<int> leaders{0}, results{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      if (flights.Join("k", [&](const int&) { ++results; })) ++leaders;
    });
  }
  for (auto& t : threads) t.join();
  flights.Complete("k", 1);
  EXPECT_EQ(leaders.load(), 1);
  EXPECT_EQ(results.load(), 8);
}

}  // namespace
}  // namespace webtier::cache
