// The pure health, outlier, slow-start and locality rules (see health_rules.h).
#include "webtier/balancer/health/health_rules.h"

#include <algorithm>

namespace webtier::balancer {

const char* HealthName(Health health) {
  switch (health) {
    case Health::kUnchecked:
    case Health::kPending: return "unchecked";
    case Health::kHealthy: return "healthy";
    case Health::kUnhealthy: return "unhealthy";
  }
  return "unchecked";
}

const char* CheckResultName(CheckResult result) {
  switch (result) {
    case CheckResult::kNone: return "none";
    case CheckResult::kPass: return "pass";
    case CheckResult::kFail: return "fail";
    case CheckResult::kTimeout: return "timeout";
  }
  return "none";
}

Health HealthTracker::Next(Health current, bool pass) {
  if (pass) {
    failures_ = 0;
    ++passes_;
  } else {
    passes_ = 0;
    ++failures_;
  }
  switch (current) {
    case Health::kUnchecked:
    case Health::kPending:
      if (pass) return Health::kHealthy;
      return failures_ >= unhealthy_threshold_ ? Health::kUnhealthy : current;
    case Health::kHealthy:
      return failures_ >= unhealthy_threshold_ ? Health::kUnhealthy : Health::kHealthy;
    case Health::kUnhealthy:
      return passes_ >= healthy_threshold_ ? Health::kHealthy : Health::kUnhealthy;
  }
  return current;
}

bool EjectionAllowed(size_t ejected, size_t total, int max_percent) {
  if (ejected + 1 >= total) return false;  // the last member always stays
  return (ejected + 1) * 100 <= total * static_cast<size_t>(std::max(0, max_percent));
}

std::chrono::milliseconds OutlierEjectionTime(std::chrono::milliseconds base, int ejection_count) {
  return base * std::clamp(ejection_count, 1, 10);
}

double SlowStartFactor(std::chrono::nanoseconds elapsed, std::chrono::milliseconds window) {
  if (window.count() <= 0 || elapsed >= window) return 1.0;
  if (elapsed.count() <= 0) return 0.1;
  const double f = std::chrono::duration<double>(elapsed) / std::chrono::duration<double>(window);
  return 0.1 + 0.9 * f;
}

double LocalShare(size_t healthy_local, size_t all_local) {
  if (all_local == 0) return 0.0;
  return std::min(1.0, 1.4 * static_cast<double>(healthy_local) / static_cast<double>(all_local));
}

}  // namespace webtier::balancer
