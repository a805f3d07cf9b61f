// The status page's arithmetic: buckets, percentiles, windows and history.
#include <gtest/gtest.h>

#include <boost/asio/ip/tcp.hpp>

#include "admin/status_history.h"
#include "webtier/balancer/upstream/answer_stats.h"
#include "webtier/balancer/upstream/member.h"

namespace webtier::balancer {
namespace {

TEST(AnswerStats, CountsClassesBytesAndTheCacheSplit) {
  AnswerStats stats;
  stats.Record(200, 10, 100, 0.1, "HIT");
  stats.Record(204, 10, 100, 0.1, "MISS, stored");
  stats.Record(503, 5, 50, 3, "");
  stats.Record(404, 5, 50, 3, "BYPASS");
  stats.Record(999, 1, 1, 1, "");  // no class: counted, not classed
  const AnswerCounts c = stats.Read();
  EXPECT_EQ(c.answers, 5u);
  EXPECT_EQ(c.codes, (std::array<uint64_t, 5>{0, 2, 0, 1, 1}));
  EXPECT_EQ(c.bytes_in, 31u);
  EXPECT_EQ(c.bytes_out, 301u);
  EXPECT_EQ(c.cache, (std::array<uint64_t, 3>{1, 1, 3}));
}

TEST(AnswerStats, LatencyBucketsDoubleFromAQuarterMillisecond) {
  const std::vector<std::pair<double, double>> cases = {{0, 0.25}, {0.25, 0.25}, {0.26, 0.5}, {1, 1}, {1.5, 2},
                                                        {1000, 1024}, {16384, 16384}};
  for (const auto& [ms, bound] : cases) {
    AnswerStats stats;
    stats.Record(200, 0, 0, ms, "");
    const AnswerCounts c = stats.Read();
    size_t bucket = 0;
    while (c.latency[bucket] == 0) ++bucket;
    EXPECT_EQ(LatencyBucketBoundMs(bucket), bound) << ms;
  }
  AnswerStats slow;
  slow.Record(200, 0, 0, 1e7, "");
  EXPECT_EQ(slow.Read().latency.back(), 1u);
  EXPECT_TRUE(std::isinf(LatencyBucketBoundMs(kLatencyBuckets - 1)));
}

TEST(AnswerCounts, PercentilesInterpolateWithinTheBucket) {
  AnswerCounts c;
  EXPECT_EQ(c.PercentileMs(0.5), -1);  // no answers
  c.latency[3] = 100;                  // (1, 2] ms
  EXPECT_DOUBLE_EQ(c.PercentileMs(0.5), 1.5);
  EXPECT_DOUBLE_EQ(c.PercentileMs(0.99), 1.99);
  c.latency[0] = 100;  // [0, 0.25] ms: the median is now at the first bucket's top
  EXPECT_DOUBLE_EQ(c.PercentileMs(0.5), 0.25);
  AnswerCounts tail;
  tail.latency.back() = 1;  // unbounded: its floor
  EXPECT_DOUBLE_EQ(tail.PercentileMs(0.99), LatencyBucketBoundMs(kLatencyBuckets - 2));
}

TEST(AnswerCounts, MinusIsTheWindowBetweenTwoReadings) {
  AnswerStats stats;
  stats.Record(200, 1, 2, 0.1, "HIT");
  const AnswerCounts before = stats.Read();
  stats.Record(500, 3, 4, 100, "");
  const AnswerCounts d = stats.Read().Minus(before);
  EXPECT_EQ(d.answers, 1u);
  EXPECT_EQ(d.codes[4], 1u);
  EXPECT_EQ(d.codes[1], 0u);
  EXPECT_EQ(d.bytes_in, 3u);
  EXPECT_EQ(d.cache[2], 1u);
  EXPECT_GT(d.PercentileMs(0.5), 64);
}

TEST(MemberHistory, KeepsTheLastChecksAndEjectionsNewestFirst) {
  MemberHistory h;
  for (int i = 0; i < 15; ++i) h.NoteCheck(i % 2 ? CheckResult::kFail : CheckResult::kPass);
  const auto checks = h.Checks();
  ASSERT_EQ(checks.size(), MemberHistory::kChecks);
  EXPECT_EQ(checks[0].result, CheckResult::kPass);  // the 15th (i = 14)
  EXPECT_EQ(checks[1].result, CheckResult::kFail);
  for (int i = 0; i < 7; ++i) h.NoteEjection("5xx", "answer " + std::to_string(i), std::chrono::milliseconds(i));
  const auto ejections = h.Ejections();
  ASSERT_EQ(ejections.size(), MemberHistory::kEjections);
  EXPECT_EQ(ejections[0].why, "answer 6");
  EXPECT_EQ(ejections[0].for_ms, 6);
  EXPECT_EQ(ejections.back().why, "answer 2");
}

std::shared_ptr<Member> MakeHost(const std::string& key, Health health) {
  MemberRecord record;
  record.key = key;
  record.member.id = key;
  return std::make_shared<Member>(record, boost::asio::ip::tcp::endpoint(), std::array<prometheus::Counter*, 4>{}, health);
}

TEST(StatusHistory, RatesPeaksSparklinesAndDowntimeFromOneSampleASecond) {
  StatusHistory history;
  auto up = MakeHost("up", Health::kUnchecked);
  auto down = MakeHost("down", Health::kUnhealthy);
  auto pending = MakeHost("pending", Health::kPending);
  AnswerStats totals;
  const auto now = Clock::now();
  // 12 seconds: 5 answers a second, 20 in the 8th second, one 5xx in the last.
  for (int second = 0; second < 12; ++second) {
    const int n = second == 8 ? 20 : 5;
    for (int i = 0; i < n; ++i) up->answers.Record(200, 1, 1, 1, "");
    if (second == 11) up->answers.Record(503, 1, 1, 1, "");
    history.Sample({up, down, pending}, totals.Read(), now);
  }
  const nlohmann::json f = history.MemberFigures("up");
  // The last 10 s: 8 x 5 + 20 + 5 + 1 answers.
  EXPECT_DOUBLE_EQ(f["rate"].get<double>(), (8 * 5 + 20 + 5 + 1) / 10.0) << f;
  EXPECT_EQ(f["peak_rate"], 20) << f;
  EXPECT_EQ(f["answers"], 11 * 5 + 20 + 1) << f;
  EXPECT_EQ(f["codes"]["5xx"], 1) << f;
  EXPECT_DOUBLE_EQ(f["code_rates"]["5xx"].get<double>(), 0.1) << f;
  ASSERT_EQ(f["spark"]["answers"].size(), 11u) << f;  // one per second after the first sample
  EXPECT_EQ(f["spark"]["answers"][7], 20) << f;
  EXPECT_EQ(f["spark"]["errors"][10], 1) << f;
  EXPECT_EQ(f["downtime_s"], 0) << f;
  EXPECT_EQ(history.MemberFigures("down")["downtime_s"], 12);
  EXPECT_EQ(history.MemberFigures("pending")["downtime_s"], 0);  // not yet checked is not down
  EXPECT_TRUE(history.MemberFigures("down")["p50_ms"].is_null());
  // A member gone from the pool for five minutes is forgotten.
  for (size_t s = 0; s <= StatusHistory::kSparkSeconds; ++s) history.Sample({up}, totals.Read(), now);
  EXPECT_EQ(history.MemberFigures("down").size(), 1u);  // only the default downtime_s
  EXPECT_EQ(history.MemberFigures("up")["spark"]["answers"].size(), StatusHistory::kSparkSeconds);
}

}  // namespace
}  // namespace webtier::balancer
