// The admin HTTP endpoint on --admin-listen, on its own thread:
//   /metrics      Prometheus text format
//   /health       200 {"status":"healthy",...}
//   /status       JSON: members (id, address, state, health, checks, ejections
//                 and their reasons, downtime, in flight, rates, codes,
//                 latency percentiles, bytes, X-Cache split, 5-minute
//                 sparkline series), totals, zk state, policy, zone
//   /status.html  (and /) a self-refreshing page over /status
//   /admin/...    forwarded to one member (admin_forward.h): purge without
//                 exposing the webnodes' admin routes on the public port
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "webtier/balancer/config.h"
#include "webtier/balancer/membership/member_registry.h"
#include "webtier/balancer/upstream/pool.h"
#include "webtier/balancer/telemetry/proxy_metrics.h"
#include "webtier/common/status.h"
#include "webtier/monitoring/metrics.h"

namespace webtier::balancer {

class AdminServer {
 public:
  // Everything passed in must outlive the server.
  AdminServer(const Config& config, Pool& pool, const MemberRegistry& registry, ProxyMetrics& metrics,
              metrics::Registry& registry_metrics);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Binds --admin-listen (or accepts on `inherited`, the admin socket handed
  // over by the previous process, when it listens there) and starts the thread.
  Status Start(int inherited = -1);
  void Stop();     // idempotent
  uint16_t port() const;
  // The listening socket, for a successor process; valid until StopAccepting.
  int listener_fd() const;
  // Closes this process's copy of the listening socket (after a handover).
  void StopAccepting();

  // The /status document (also used by tests).
  std::string StatusJson() const;

  // The edge cache, before Start: its figures go on /metrics and /status,
  // and a purge through this port erases its copy here at once (every other
  // balancer hears of it on the invalidation channel; without one,
  // `following` false, a tag purge empties this balancer's edge cache).
  // `following` tells whether the channel is subscribed now.
  void SetEdgeCache(edge::EdgeCache* edge, std::function<bool()> following);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace webtier::balancer
