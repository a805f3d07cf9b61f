// Registration of the health, outlier and locality metrics.
#include "webtier/balancer/health/health_metrics.h"

namespace webtier::balancer {

HealthMetrics::HealthMetrics(prometheus::Registry& r)
    : members_unhealthy(prometheus::BuildGauge()
                            .Name("balancer_pool_members")
                            .Help("Members in the pool by state.")
                            .Register(r)
                            .Add({{"state", "unhealthy"}})),
      checks_(prometheus::BuildCounter()
                  .Name("balancer_health_checks_total")
                  .Help("Active health checks of members, by result.")
                  .Register(r)),
      ejections_(prometheus::BuildCounter()
                     .Name("balancer_outlier_ejections_total")
                     .Help("Members ejected for 5xx answers, failed connects or stalls, by reason.")
                     .Register(r)) {
  auto& locality = prometheus::BuildCounter()
                       .Name("balancer_locality_requests_total")
                       .Help("Requests by whether their member is in the balancer's zone (none: no --zone).")
                       .Register(r);
  locality_ = {&locality.Add({{"locality", "local"}}), &locality.Add({{"locality", "remote"}}),
               &locality.Add({{"locality", "none"}})};
}

void HealthMetrics::CountCheck(const std::string& member, CheckResult result) {
  checks_.Add({{"member", member}, {"result", CheckResultName(result)}}).Increment();
}

void HealthMetrics::CountEjection(const std::string& member, std::string_view reason) {
  ejections_.Add({{"member", member}, {"reason", std::string(reason)}}).Increment();
}

}  // namespace webtier::balancer
