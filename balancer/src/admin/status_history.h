// The status page's memory. Once a second the admin thread samples every
// member's AnswerStats and the balancer's own; from the samples /status
// reports rates over the last 10 s, the peak second, latency percentiles
// over the last minute, downtime, and five minutes of per-second counts for
// the sparklines. Bounded: 61 full samples and 300 pairs of counts per
// member; a member gone from the pool for five minutes is forgotten.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "webtier/balancer/upstream/answer_stats.h"
#include "webtier/balancer/upstream/member.h"
#include "webtier/common/mutex.h"

namespace webtier::balancer {

class StatusHistory {
 public:
  static constexpr size_t kSparkSeconds = 300;
  static constexpr size_t kWindowSeconds = 60;
  static constexpr size_t kRateSeconds = 10;

  // This second's sample of `members` and of the balancer's `totals`.
  void Sample(const std::vector<std::shared_ptr<Member>>& members, const AnswerCounts& totals, Clock::time_point now);

  // The figures of one member (by its znode key) and of the balancer, as
  // /status names them: rate, peak_rate, codes, code_rates, p50_ms, p99_ms,
  // bytes_in, bytes_out, cache, spark (and downtime_s for a member).
  nlohmann::json MemberFigures(const std::string& key) const;
  nlohmann::json TotalFigures() const;

 private:
  struct Series {
    std::deque<AnswerCounts> window;  // one per second, newest last
    std::deque<uint32_t> spark_answers;  // answers per second, newest last
    std::deque<uint32_t> spark_errors;   // 5xx per second
    int64_t down_seconds = 0;
    uint64_t last_tick = 0;

    void Add(const AnswerCounts& counts);
    nlohmann::json Figures() const;
  };

  mutable Mutex mu_;
  std::unordered_map<std::string, Series> members_ WEBTIER_GUARDED_BY(mu_);
  Series totals_ WEBTIER_GUARDED_BY(mu_);
  uint64_t tick_ WEBTIER_GUARDED_BY(mu_) = 0;
};

}  // namespace webtier::balancer
