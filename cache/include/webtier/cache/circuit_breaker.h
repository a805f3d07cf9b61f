// A circuit breaker in front of the shared store: after repeated failures the
// cache stops calling Redis for a cool-down, then lets one probe through.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>

#include "webtier/cache/clock.h"
#include "webtier/common/mutex.h"
#include "webtier/common/thread_annotations.h"

namespace webtier::cache {

struct BreakerOptions {
  int failure_threshold = 3;                    // consecutive failures that open it
  std::chrono::milliseconds cooldown{2000};     // open this long before a probe
};

// Thread-safe. Closed: every call allowed. Open: none until the cool-down has
// passed; then half-open: exactly one caller is allowed (the probe), whose
// success closes the breaker and whose failure opens it for another cool-down.
// Allow() on a closed breaker is one atomic load. `clock` must outlive it.
//
// `epoch` (optional) names the store behind the breaker, e.g. the Redis
// master's generation: when it differs from what it was when the breaker
// opened (Sentinel promoted a new master), the cool-down is cut short and the
// next caller probes the new store at once. Called only while open.
class CircuitBreaker {
 public:
  enum class State { kClosed, kOpen, kHalfOpen };

  CircuitBreaker(BreakerOptions options, Clock* clock, std::function<uint64_t()> epoch = nullptr);

  // True when the caller may use the store; a true answer in the half-open
  // state makes the caller the probe, which must report back.
  bool Allow() WEBTIER_EXCLUDES(mu_);
  void RecordSuccess() WEBTIER_EXCLUDES(mu_);
  void RecordFailure() WEBTIER_EXCLUDES(mu_);

  State state() const { return state_.load(std::memory_order_acquire); }
  // Times the breaker went from closed/half-open to open.
  uint64_t trips() const { return trips_.load(std::memory_order_relaxed); }

 private:
  const BreakerOptions options_;
  Clock* const clock_;
  std::atomic<State> state_{State::kClosed};
  std::atomic<uint64_t> trips_{0};
  Mutex mu_;
  std::atomic<int> failures_{0};                       // consecutive; written under mu_ except the reset
  const std::function<uint64_t()> epoch_;
  std::chrono::steady_clock::time_point open_until_ WEBTIER_GUARDED_BY(mu_);
  uint64_t epoch_when_opened_ WEBTIER_GUARDED_BY(mu_) = 0;
  bool probe_in_flight_ WEBTIER_GUARDED_BY(mu_) = false;
};

}  // namespace webtier::cache
