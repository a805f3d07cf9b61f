// What one proxy worker's client sessions and exchanges share: its
// io_context, the configuration as durations and a retry policy, its idle
// member connections and relay buffers, the pool snapshot it reads, and the
// server-wide counters. Everything but the atomics is touched only from the
// worker's thread.
#pragma once

#include <atomic>
#include <list>
#include <memory>

#include <boost/asio/io_context.hpp>

#include "engine/connection.h"
#include "engine/relay.h"
#include "engine/send_batch.h"
#include "upstream/idle_connections.h"
#include "webtier/balancer/edge/edge_cache.h"
#include "webtier/balancer/telemetry/access_log.h"
#include "webtier/balancer/upstream/pool.h"
#include "webtier/balancer/telemetry/proxy_metrics.h"
#include "webtier/balancer/engine/retry_policy.h"
#include "webtier/common/otlp.h"

namespace webtier::balancer {

// How long a client connection may wait for its next request once the
// server drains: long enough for a client under load to send it (and get
// Connection: close), short enough not to hold the drain. Closing sooner
// would race requests already on their way.
inline constexpr std::chrono::milliseconds kDrainIdleGrace{1000};

// Shared by every worker of one ProxyServer.
struct ServerCounters {
  std::atomic<int> open_connections{0};  // client connections
  std::atomic<int> active_requests{0};   // requests being forwarded
  std::atomic<bool> draining{false};     // Shutdown began: keep no connection
};

struct WorkerContext {
  // `clients` must outlive `io` (coroutine frames destroyed with it unregister).
  WorkerContext(asio::io_context& io, const Config& config, Pool& pool, ProxyMetrics& metrics,
                ServerCounters& counters, std::list<ClientConnection*>& clients)
      : io(io), config(config), timeouts(config), retry(config), pool(pool), metrics(metrics), counters(counters),
        clients(clients), hosts(config.hosts), idle_connections(config, counters.draining),
        member_sends(io, config.io_uring) {}

  bool draining() const { return counters.draining.load(std::memory_order_relaxed); }

  // The pool's current generation, re-read only when its version moved.
  const std::shared_ptr<const MemberSet>& Snapshot() {
    const uint64_t v = pool.version();
    if (v != snapshot_version_ || !snapshot_) {
      snapshot_ = pool.Snapshot();
      snapshot_version_ = v;
    }
    return snapshot_;
  }

  asio::io_context& io;
  const Config& config;
  const Timeouts timeouts;
  const RetryPolicy retry;
  Pool& pool;
  ProxyMetrics& metrics;
  ServerCounters& counters;
  std::list<ClientConnection*>& clients;  // open client connections, for the watchdog and drains
  const HostAllowList hosts;              // --host
  IdleConnections idle_connections;
  RelayBuffers relay_buffers;
  SendBatch member_sends;  // --io-uring: a turn's requests to members in one submission
  AccessLog* access_log = nullptr;          // --access-log; null: off
  AccessLog::Shard* access_shard = nullptr;  // this worker's lines
  otlp::Exporter* spans = nullptr;           // --otlp-endpoint; null: off
  edge::EdgeCache* edge = nullptr;           // --edge-cache-bytes (shared by the workers); null: off

 private:
  std::shared_ptr<const MemberSet> snapshot_;
  uint64_t snapshot_version_ = ~0ULL;
};

}  // namespace webtier::balancer
