// The balancer's clock and timers: the steady clock plus an offset that only
// tests move (ManualTime). Every deadline, ejection back-off, slow-start ramp
// and idle sweep of the balancer reads Clock::now(), and every Asio timer of
// the balancer is a Timer, so a test can make time pass without sleeping.
//
// In production the offset stays zero: Clock::now() costs one relaxed atomic
// load over std::chrono::steady_clock::now(), and a Timer waits exactly as
// asio::steady_timer does (the same reactor waits, no extra wakeups).
//
// Beast's tcp_stream keeps its own internal steady timers (expires_after on a
// stream): those timeouts stay on the real clock and ManualTime does not move
// them.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>

#include <boost/asio/basic_waitable_timer.hpp>

namespace webtier::balancer {

class ManualTime;

// A steady clock (Cpp17TrivialClock): never goes back, the offset only grows.
// Its time_point is a type of its own, so it never mixes with
// std::chrono::steady_clock's by accident.
class Clock {
 public:
  using duration = std::chrono::steady_clock::duration;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<Clock, duration>;
  static constexpr bool is_steady = true;

  static time_point now() noexcept {
    return time_point(std::chrono::steady_clock::now().time_since_epoch() +
                      duration(offset_.load(std::memory_order_relaxed)));
  }

  // Whether a ManualTime is alive (Timer's waits are then capped).
  static bool manual() noexcept { return manual_.load(std::memory_order_relaxed) > 0; }

 private:
  friend class ManualTime;
  inline static std::atomic<rep> offset_{0};  // added to the steady clock; tests only raise it
  inline static std::atomic<int> manual_{0};  // live ManualTime objects
};

// Asio's wait traits for Clock: how long a reactor may block for the earliest
// Timer. In production that is the real time left, as for a steady_timer.
// While a test controls time, each wait is capped at kManualTick so that a
// timer whose expiry ManualTime::Advance jumped over fires within about a
// tick (the reactor wakes, sees Clock::now() past the expiry, runs it).
struct ClockWaitTraits {
  static constexpr std::chrono::milliseconds kManualTick{1};

  static Clock::duration to_wait_duration(const Clock::duration& d) {
    if (Clock::manual() && d > kManualTick) return kManualTick;
    return d;
  }
  static Clock::duration to_wait_duration(const Clock::time_point& t) {
    // now() is never negative (the steady clock plus advances), so t - now
    // can only overflow for a t near time_point::min().
    const Clock::duration since = Clock::now().time_since_epoch();
    if (t.time_since_epoch() < (Clock::duration::min)() + since) return (Clock::duration::min)();
    return to_wait_duration(t.time_since_epoch() - since);
  }
};

// The balancer's Asio timer: asio::steady_timer on Clock.
using Timer = boost::asio::basic_waitable_timer<Clock, ClockWaitTraits>;

// Test-only: takes control of the balancer's time for its lifetime. Advance()
// moves Clock::now() forward in every thread at once; Timers whose expiry
// that passes fire within about ClockWaitTraits::kManualTick. Real time still
// runs too (the clock is the steady clock plus the advances).
//
// Take control before starting what owns the timers to be moved: a reactor
// already blocked for a long wait picks up the cap only at its next wait.
// The advances stay when the object goes (the clock never goes back); only
// the cap ends. Never constructed by the balancer itself.
class ManualTime {
 public:
  ManualTime() { Clock::manual_.fetch_add(1, std::memory_order_relaxed); }
  ~ManualTime() { Clock::manual_.fetch_sub(1, std::memory_order_relaxed); }
  ManualTime(const ManualTime&) = delete;
  ManualTime& operator=(const ManualTime&) = delete;

  // Moves the balancer's clock forward by `d` (>= 0).
  void Advance(Clock::duration d) {
    if (d > Clock::duration::zero()) Clock::offset_.fetch_add(d.count(), std::memory_order_relaxed);
  }
};

}  // namespace webtier::balancer
