// The webnode's HTTP front: a public Pistache endpoint (--listen) that checks
// each request's target and Host, answers / (demo app only) and the bare
// /health itself and hands everything else to the ContentService; and an
// admin endpoint (--admin-listen) with /metrics, the detailed /health, /ready
// and the ContentService's admin routes. Every response carries X-Served-By.
#pragma once

#include <pistache/endpoint.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "webtier/common/status.h"
#include "webtier/monitoring/metrics.h"
#include "webtier/webnode/config.h"
#include "webtier/webnode/content.h"
#include "webtier/webnode/http_metrics.h"

namespace webtier::otlp {
class Exporter;
}

namespace webtier::webnode {

// What the admin /health and /ready report besides the server's own state.
struct NodeProbes {
  std::function<bool()> registered;     // member znode exists
  std::function<bool()> zk_connected;   // ZooKeeper session connected
  std::function<std::string()> redis_master;  // "host:port" / "unknown"; "" or unset = no Redis
};

class NodeServer {
 public:
  // `content`, `registry`, the probes and `spans` (when given: a span per
  // request, --otlp-endpoint) must outlive the server.
  NodeServer(const Config& config, metrics::Registry& registry, ContentService& content, NodeProbes probes,
             otlp::Exporter* spans = nullptr);
  ~NodeServer();
  NodeServer(const NodeServer&) = delete;
  NodeServer& operator=(const NodeServer&) = delete;

  // Binds and starts the worker threads; returns once the socket listens.
  // Fails (kUnavailable) when the address cannot be bound.
  Status Start();
  // /ready answers 503 from now on.
  void SetDraining();
  // Stops accepting and joins the worker threads.
  void Shutdown();

  // The bound port (the real one with --listen host:0); 0 before Start().
  uint16_t port() const;
  // The admin listener's bound port; 0 before Start().
  uint16_t admin_port() const;

  struct Shared;  // state shared by the per-thread handler clones

 private:
  std::unique_ptr<Shared> shared_;
  std::unique_ptr<Pistache::Http::Endpoint> endpoint_;
  std::unique_ptr<Pistache::Http::Endpoint> admin_;
};

}  // namespace webtier::webnode
