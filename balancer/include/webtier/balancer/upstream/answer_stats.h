// What the status page shows of the answers that went through the balancer:
// counters the workers add to with relaxed atomics on the request path
// (AnswerStats), their plain copies (AnswerCounts), and a member's recent
// checks and ejections (MemberHistory), kept behind a mutex on cold paths.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "webtier/balancer/health/health_rules.h"
#include "webtier/common/mutex.h"

namespace webtier::balancer {

// Upper bounds, in ms, of the latency buckets: 0.25 ms doubling to 16 s;
// the last bucket has no upper bound.
inline constexpr size_t kLatencyBuckets = 18;
double LatencyBucketBoundMs(size_t bucket);  // +inf for the last

// A copy of AnswerStats at one moment; differences of two are a window.
struct AnswerCounts {
  uint64_t answers = 0;
  std::array<uint64_t, 5> codes{};  // 1xx, 2xx, 3xx, 4xx, 5xx
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  std::array<uint64_t, 3> cache{};  // X-Cache: HIT..., MISS..., anything else or none
  std::array<uint64_t, kLatencyBuckets> latency{};

  AnswerCounts Minus(const AnswerCounts& earlier) const;
  // The latency under which a fraction `q` of the answers fell, interpolated
  // within its bucket; -1 without answers.
  double PercentileMs(double q) const;
};

// Thread-safe; relaxed atomics (the counts are read for display only).
class AnswerStats {
 public:
  // One answer: its status, the bytes read from and written to the client,
  // its latency and the X-Cache it carried ("" when none).
  void Record(int status, uint64_t bytes_in, uint64_t bytes_out, double latency_ms, std::string_view x_cache);
  AnswerCounts Read() const;

 private:
  std::atomic<uint64_t> answers_{0};
  std::array<std::atomic<uint64_t>, 5> codes_{};
  std::atomic<uint64_t> bytes_in_{0};
  std::atomic<uint64_t> bytes_out_{0};
  std::array<std::atomic<uint64_t>, 3> cache_{};
  std::array<std::atomic<uint64_t>, kLatencyBuckets> latency_{};
};

// A member's last health-check results and ejections, newest first. Written
// by the health checker and the workers when they happen (rare), read by the
// admin thread.
class MemberHistory {
 public:
  static constexpr size_t kChecks = 10;
  static constexpr size_t kEjections = 5;

  struct Check {
    std::chrono::system_clock::time_point time;
    CheckResult result;
  };
  struct Ejection {
    std::chrono::system_clock::time_point time;
    std::string reason;  // the reason label of balancer_outlier_ejections_total
    std::string why;     // what happened, e.g. "Connection refused"
    int64_t for_ms;
  };

  void NoteCheck(CheckResult result);
  void NoteEjection(std::string_view reason, std::string_view why, std::chrono::milliseconds duration);
  std::vector<Check> Checks() const;
  std::vector<Ejection> Ejections() const;

 private:
  mutable Mutex mu_;
  std::deque<Check> checks_ WEBTIER_GUARDED_BY(mu_);
  std::deque<Ejection> ejections_ WEBTIER_GUARDED_BY(mu_);
};

}  // namespace webtier::balancer
