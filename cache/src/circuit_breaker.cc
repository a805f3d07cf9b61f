// Circuit breaker state machine.
#include "webtier/cache/circuit_breaker.h"

#include <utility>

namespace webtier::cache {

CircuitBreaker::CircuitBreaker(BreakerOptions options, Clock* clock, std::function<uint64_t()> epoch)
    : options_(options), clock_(clock), epoch_(std::move(epoch)) {}

bool CircuitBreaker::Allow() {
  if (state_.load(std::memory_order_acquire) == State::kClosed) return true;
  MutexLock lock(&mu_);
  switch (state_.load(std::memory_order_relaxed)) {
    case State::kClosed:
      return true;
    case State::kOpen:
      if (clock_->SteadyNow() < open_until_ && !(epoch_ && epoch_() != epoch_when_opened_)) return false;
      state_.store(State::kHalfOpen, std::memory_order_release);
      probe_in_flight_ = true;
      return true;
    case State::kHalfOpen:
      if (probe_in_flight_) return false;
      probe_in_flight_ = true;
      return true;
  }
  return false;
}

void CircuitBreaker::RecordSuccess() {
  if (state_.load(std::memory_order_acquire) == State::kClosed) {
    // The hot path: one load, no lock, while nothing fails.
    if (failures_.load(std::memory_order_relaxed) != 0) failures_.store(0, std::memory_order_relaxed);
    return;
  }
  MutexLock lock(&mu_);
  failures_.store(0, std::memory_order_relaxed);
  probe_in_flight_ = false;
  state_.store(State::kClosed, std::memory_order_release);
}

void CircuitBreaker::RecordFailure() {
  MutexLock lock(&mu_);
  State s = state_.load(std::memory_order_relaxed);
  if (s == State::kOpen) return;  // a call that started before it opened
  if (s == State::kClosed && failures_.fetch_add(1, std::memory_order_relaxed) + 1 < options_.failure_threshold) return;
  state_.store(State::kOpen, std::memory_order_release);
  open_until_ = clock_->SteadyNow() + options_.cooldown;
  if (epoch_) epoch_when_opened_ = epoch_();
  probe_in_flight_ = false;
  failures_.store(0, std::memory_order_relaxed);
  trips_.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace webtier::cache
