// AnswerStats, AnswerCounts and MemberHistory: the status page's raw data.
#include "webtier/balancer/upstream/answer_stats.h"

#include <cmath>
#include <limits>

namespace webtier::balancer {

namespace {
constexpr double kFirstBoundMs = 0.25;
constexpr auto kRelaxed = std::memory_order_relaxed;

size_t BucketOf(double ms) {
  size_t bucket = 0;
  for (double bound = kFirstBoundMs; bucket + 1 < kLatencyBuckets && ms > bound; bound *= 2) ++bucket;
  return bucket;
}

// "HIT", "HIT from node-1" ... -> 0; "MISS..." -> 1; anything else -> 2.
size_t CacheClassOf(std::string_view x_cache) {
  if (x_cache.substr(0, 3) == "HIT") return 0;
  if (x_cache.substr(0, 4) == "MISS") return 1;
  return 2;
}
}  // namespace

double LatencyBucketBoundMs(size_t bucket) {
  if (bucket + 1 >= kLatencyBuckets) return std::numeric_limits<double>::infinity();
  return std::ldexp(kFirstBoundMs, static_cast<int>(bucket));
}

AnswerCounts AnswerCounts::Minus(const AnswerCounts& earlier) const {
  AnswerCounts d = *this;
  d.answers -= earlier.answers;
  for (size_t i = 0; i < codes.size(); ++i) d.codes[i] -= earlier.codes[i];
  d.bytes_in -= earlier.bytes_in;
  d.bytes_out -= earlier.bytes_out;
  for (size_t i = 0; i < cache.size(); ++i) d.cache[i] -= earlier.cache[i];
  for (size_t i = 0; i < latency.size(); ++i) d.latency[i] -= earlier.latency[i];
  return d;
}

double AnswerCounts::PercentileMs(double q) const {
  uint64_t total = 0;
  for (uint64_t n : latency) total += n;
  if (total == 0) return -1;
  const double rank = q * static_cast<double>(total);
  double below = 0;
  for (size_t i = 0; i < latency.size(); ++i) {
    const double n = static_cast<double>(latency[i]);
    if (n > 0 && below + n >= rank) {
      const double lower = i == 0 ? 0 : LatencyBucketBoundMs(i - 1);
      if (i + 1 == latency.size()) return lower;  // no upper bound: its floor
      return lower + (LatencyBucketBoundMs(i) - lower) * (rank - below) / n;
    }
    below += n;
  }
  return LatencyBucketBoundMs(latency.size() - 2);
}

void AnswerStats::Record(int status, uint64_t bytes_in, uint64_t bytes_out, double latency_ms,
                         std::string_view x_cache) {
  answers_.fetch_add(1, kRelaxed);
  if (status >= 100 && status < 600) codes_[static_cast<size_t>(status / 100 - 1)].fetch_add(1, kRelaxed);
  bytes_in_.fetch_add(bytes_in, kRelaxed);
  bytes_out_.fetch_add(bytes_out, kRelaxed);
  cache_[CacheClassOf(x_cache)].fetch_add(1, kRelaxed);
  latency_[BucketOf(latency_ms)].fetch_add(1, kRelaxed);
}

AnswerCounts AnswerStats::Read() const {
  AnswerCounts c;
  c.answers = answers_.load(kRelaxed);
  for (size_t i = 0; i < codes_.size(); ++i) c.codes[i] = codes_[i].load(kRelaxed);
  c.bytes_in = bytes_in_.load(kRelaxed);
  c.bytes_out = bytes_out_.load(kRelaxed);
  for (size_t i = 0; i < cache_.size(); ++i) c.cache[i] = cache_[i].load(kRelaxed);
  for (size_t i = 0; i < latency_.size(); ++i) c.latency[i] = latency_[i].load(kRelaxed);
  return c;
}

void MemberHistory::NoteCheck(CheckResult result) {
  MutexLock lock(&mu_);
  checks_.push_front({std::chrono::system_clock::now(), result});
  if (checks_.size() > kChecks) checks_.pop_back();
}

void MemberHistory::NoteEjection(std::string_view reason, std::string_view why, std::chrono::milliseconds duration) {
  MutexLock lock(&mu_);
  ejections_.push_front({std::chrono::system_clock::now(), std::string(reason), std::string(why), duration.count()});
  if (ejections_.size() > kEjections) ejections_.pop_back();
}

std::vector<MemberHistory::Check> MemberHistory::Checks() const {
  MutexLock lock(&mu_);
  return {checks_.begin(), checks_.end()};
}

std::vector<MemberHistory::Ejection> MemberHistory::Ejections() const {
  MutexLock lock(&mu_);
  return {ejections_.begin(), ejections_.end()};
}

}  // namespace webtier::balancer
