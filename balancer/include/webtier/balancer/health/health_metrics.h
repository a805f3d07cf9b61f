// The metrics of health checks, outlier ejection and locality (names and
// labels in docs/reference.md "Metrics"), part of ProxyMetrics.
// Thread-safe. The per-member counters are looked up by label (a lock in the
// family): they sit on the checker's thread and the rare ejection path only.
#pragma once

#include <array>
#include <string>
#include <string_view>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "webtier/balancer/health/health_rules.h"

namespace webtier::balancer {

// The `locality` label of balancer_locality_requests_total.
enum class Locality { kLocal = 0, kRemote, kNone, kCount };

class HealthMetrics {
 public:
  explicit HealthMetrics(prometheus::Registry& registry);

  // balancer_health_checks_total{member,result}
  void CountCheck(const std::string& member, CheckResult result);
  // balancer_outlier_ejections_total{member,reason}; reason "5xx",
  // "connect_failure" or "timeout".
  void CountEjection(const std::string& member, std::string_view reason);
  // balancer_locality_requests_total{locality}
  void CountLocality(Locality locality) { locality_[static_cast<size_t>(locality)]->Increment(); }

  prometheus::Gauge& members_unhealthy;  // balancer_pool_members{state="unhealthy"}

 private:
  prometheus::Family<prometheus::Counter>& checks_;
  prometheus::Family<prometheus::Counter>& ejections_;
  std::array<prometheus::Counter*, static_cast<size_t>(Locality::kCount)> locality_{};
};

}  // namespace webtier::balancer
