// The pure rules of health, outliers, slow start and locality (balancer/README.md
// "Health, outliers, slow start and zones"): no I/O, no clock of their
// own, unit-tested in tests/balancer/health_rules_test.cc. The health checker,
// the exchange and the policies apply them.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace webtier::balancer {

// What the active checks say about a member.
enum class Health : uint8_t {
  kUnchecked = 0,  // checks are off: the member gets traffic
  kPending,        // checks are on, no check has passed yet: no traffic (shown as "unchecked")
  kHealthy,        // passing: traffic
  kUnhealthy,      // failed --unhealthy-threshold checks in a row: no new requests
};
// "unchecked" | "healthy" | "unhealthy" (kPending reads "unchecked").
const char* HealthName(Health health);
// Whether the checks let the member take new requests.
inline bool HealthAdmits(Health health) { return health == Health::kUnchecked || health == Health::kHealthy; }

// The result of one check, the `result` label of balancer_health_checks_total.
enum class CheckResult : uint8_t { kNone = 0, kPass, kFail, kTimeout };
const char* CheckResultName(CheckResult result);  // "none" | "pass" | "fail" | "timeout"

// One member's check history: passes and failures in a row. Used from the
// checker's thread only.
class HealthTracker {
 public:
  HealthTracker(int healthy_threshold, int unhealthy_threshold)
      : healthy_threshold_(healthy_threshold), unhealthy_threshold_(unhealthy_threshold) {}
  // The member's health after a check that passed or not, from `current`:
  // a pending member is admitted by its first pass (and marked unhealthy
  // after --unhealthy-threshold failures); a healthy one turns unhealthy
  // after --unhealthy-threshold failures in a row; an unhealthy one healthy
  // after --healthy-threshold passes in a row.
  Health Next(Health current, bool pass);

 private:
  int healthy_threshold_;
  int unhealthy_threshold_;
  int passes_ = 0;
  int failures_ = 0;
};

// Whether one more member may be ejected when `ejected` of `total` already
// are: at most `max_percent` of the pool, and never the last member.
bool EjectionAllowed(size_t ejected, size_t total, int max_percent);

// How long an outlier stays out: `base` times its ejection count (1 for the
// first), at most 10 times `base`.
std::chrono::milliseconds OutlierEjectionTime(std::chrono::milliseconds base, int ejection_count);

// The share a member that became healthy `elapsed` ago gets, as a fraction of
// its full share: 10% at once, rising linearly to 100% at `window` (0 = off: 1).
double SlowStartFactor(std::chrono::nanoseconds elapsed, std::chrono::milliseconds window);

// The fraction of traffic the balancer's own zone keeps: min(1, 1.4 x
// healthy local / all local); 0 when the zone has no member.
double LocalShare(size_t healthy_local, size_t all_local);

}  // namespace webtier::balancer
