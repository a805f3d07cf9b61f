// The flags of health checks, outlier detection, slow start and locality.
#include "webtier/balancer/config.h"
#include "webtier/common/flags.h"

namespace webtier::balancer {

void AddHealthFlags(CLI::App& app, HealthOptions* h) {
  app.add_option("--health-path", h->path, "active check GET per member; empty = no active checks")
      ->capture_default_str();
  app.add_option("--health-interval-ms", h->interval_ms, "between checks of one member (up to 10% jitter)")
      ->capture_default_str()
      ->check(CLI::Range(10, 3600000));
  app.add_option("--health-timeout-ms", h->timeout_ms, "a check that takes longer fails")
      ->capture_default_str()
      ->check(CLI::Range(1, 600000));
  app.add_option("--healthy-threshold", h->healthy_threshold, "passes in a row to become healthy")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  app.add_option("--unhealthy-threshold", h->unhealthy_threshold, "failures in a row to become unhealthy")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  app.add_option("--outlier-consecutive-5xx", h->outlier_consecutive_5xx,
                 "5xx answers or failed connects in a row that eject a member (0 = off)")
      ->capture_default_str()
      ->check(CLI::Range(0, 100000));
  app.add_option("--outlier-base-ejection-ms", h->outlier_base_ejection_ms,
                 "ejection time, times the member's ejection count, capped at 10x")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600000));
  app.add_option("--max-ejection-percent", h->max_ejection_percent,
                 "ejections never take more of the pool than this (at least one member stays)")
      ->capture_default_str()
      ->check(CLI::Range(0, 100));
  app.add_option("--slow-start-ms", h->slow_start_ms,
                 "a member that becomes healthy ramps from 10% to its full share over this time (0 = off)")
      ->capture_default_str()
      ->check(CLI::Range(0, 3600000));
  app.add_option("--zone", h->zone, "the balancer's own zone: same-zone members are preferred (empty = off)")
      ->capture_default_str();
}

Status FinalizeHealth(const HealthOptions& h) {
  if (!h.path.empty() && h.path.front() != '/') return flags::Invalid("--health-path", "must start with / (or be empty)");
  if (h.path.find_first_of(" \r\n") != std::string::npos) return flags::Invalid("--health-path", "must not contain spaces");
  return Status::Ok();
}

}  // namespace webtier::balancer
