// The proxy engine: Boost.Asio + Beast with C++20 coroutines, one io_context
// per thread, each with its own SO_REUSEPORT acceptor and its own keep-alive
// pool of upstream connections; threads share only the pool snapshot (read
// through an atomic version), per-member atomics and the metrics. Timeouts are
// coarse (a per-thread watchdog, 50 ms tick), so no timer is armed per I/O.
// Request bodies up to 64 KiB are read whole (so idempotent requests can be
// replayed on another member), larger ones are streamed; responses are
// streamed back. The engine's parts are listed in balancer/README.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "webtier/balancer/telemetry/access_log.h"
#include "webtier/balancer/config.h"
#include "webtier/balancer/upstream/pool.h"
#include "webtier/balancer/telemetry/proxy_metrics.h"
#include "webtier/balancer/tls/tls_context.h"
#include "webtier/common/status.h"

namespace webtier::otlp {
class Exporter;
}

namespace webtier::balancer {

class Worker;
namespace edge {
class EdgeCache;
}
struct ServerCounters;

class ProxyServer {
 public:
  // `config`, `pool`, `metrics` and `tls` must outlive the server. `tls` (a
  // loaded context) is needed when config.tls_listen is set: that address
  // then takes TLS connections, served like the plain ones. `access_log`,
  // when given (and outliving the server), gets a line per request;
  // `spans`, likewise, a span per request (--otlp-endpoint); `edge`, the
  // edge cache every worker answers from (--edge-cache-bytes).
  ProxyServer(const Config& config, Pool& pool, ProxyMetrics& metrics, const TlsContext* tls = nullptr,
              AccessLog* access_log = nullptr, otlp::Exporter* spans = nullptr, edge::EdgeCache* edge = nullptr);
  ~ProxyServer();
  ProxyServer(const ProxyServer&) = delete;
  ProxyServer& operator=(const ProxyServer&) = delete;

  // Binds --listen (and --tls-listen) on every thread and starts them. Fails
  // (kUnavailable) when an address cannot be bound. Logs one `listening`
  // line per address: component "proxy", and "tls" for --tls-listen.
  // `inherited` and `inherited_tls` are listening sockets handed over by the
  // previous process (control/handover.h), taken over (closed on failure):
  // accepted on instead of binding when they listen where the flag says.
  Status Start(std::vector<int> inherited = {}, std::vector<int> inherited_tls = {});
  uint16_t port() const { return port_; }
  uint16_t tls_port() const { return tls_port_; }  // 0 without --tls-listen

  // The listening sockets, plain or TLS, for a successor process (copies of
  // them go; these stay this server's). Valid until StopAccepting/Shutdown.
  std::vector<int> listener_fds(bool tls) const;
  // Closes this process's listening sockets: after a handover the successor
  // accepts on them (they stay open there, queued connections and all).
  void StopAccepting();

  // Stops accepting and drains: a keep-alive connection's next request is
  // answered with Connection: close, one that stays idle for
  // a second (kDrainIdleGrace) is closed, requests in flight and tunnels finish; after
  // `drain` whatever is left is closed and the threads stop. Safe from any thread.
  void Shutdown(std::chrono::milliseconds drain);

  // Client connections open right now, and requests being forwarded.
  int open_connections() const;
  int active_requests() const;

 private:
  // Binds `listen` on every worker, or adopts `inherited` (TLS when `tls`).
  Status Bind(const net::HostPort& listen, std::string_view flag, const TlsContext* tls, std::vector<int> inherited,
              uint16_t* port, std::string* address);

  const Config& config_;
  Pool& pool_;
  ProxyMetrics& metrics_;
  const TlsContext* const tls_;
  AccessLog* const access_log_;
  otlp::Exporter* const spans_;
  edge::EdgeCache* const edge_;
  std::unique_ptr<ServerCounters> counters_;  // shared by the workers
  std::vector<std::unique_ptr<Worker>> workers_;
  uint16_t port_ = 0;
  uint16_t tls_port_ = 0;
};

}  // namespace webtier::balancer
