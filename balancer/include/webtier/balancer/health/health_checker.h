// Active health checks (balancer/README.md "Health, outliers, slow start and
// zones"): ONE checker per balancer process, on its own thread and
// io_context, not one per proxy worker. Every member of the pool is sent
// `GET --health-path` every --health-interval-ms (start to start, plus up to
// 10% jitter) over a kept-alive connection, the first time as soon as it
// appears; a 2xx within --health-timeout-ms passes, anything else (status,
// refused connect, reset, timeout) fails. The result goes through the
// member's HealthTracker and is published on its Member (atomics): the proxy
// workers read it lock-free when they pick a member. A member's check loop
// ends when it leaves the pool.
//
// Threading: Start()/Stop() from the owner's thread; the pool's update hook
// (any thread) only posts to the checker's io_context.
#pragma once

#include <memory>

#include "webtier/balancer/config.h"
#include "webtier/balancer/upstream/pool.h"
#include "webtier/balancer/telemetry/proxy_metrics.h"

namespace webtier::balancer {

class HealthChecker {
 public:
  // `pool` and `metrics` (may be null) must outlive the checker. Installs the
  // pool's update hook: call before membership updates start.
  HealthChecker(const HealthOptions& options, Pool& pool, ProxyMetrics* metrics);
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // Starts the thread and checks the members already in the pool. A no-op
  // when checks are off (empty --health-path).
  void Start();
  void Stop();  // idempotent

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace webtier::balancer
