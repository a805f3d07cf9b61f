// The balancer's Prometheus metrics (names as in docs/reference.md),
// registered once in the program's registry. Label sets that sit on hot paths
// are resolved once and kept as references (Family::Add takes a lock).
#pragma once

#include <array>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "webtier/balancer/edge/edge_cache.h"
#include "webtier/balancer/upstream/answer_stats.h"
#include "webtier/balancer/health/health_metrics.h"
#include "webtier/balancer/upstream/member.h"

namespace webtier::balancer {

// Why a client request was refused before it reached a member: the `reason`
// label of balancer_rejected_requests_total.
enum class Rejection {
  kBadRequest = 0,
  kSmuggling,
  kHeaderTooLarge,
  kBodyTooLarge,
  kHeaderTimeout,
  kUnsupportedCoding,  // a Transfer-Encoding the balancer does not implement (501)
  kAdminPath,          // /admin/... on the public listener (404): admin goes through the admin port
  kTooManyFields,      // more header fields than --max-header-fields (431)
  kMisdirected,        // a Host not in --host (421)
  kChunkLine,          // a chunk-size line (with its extensions) over 4 KiB (400)
  kTrailerTooLarge,    // a trailer section over --max-header-bytes (400)
  kBodyTimeout,        // the body not complete within --body-timeout-ms of its header (408)
  kCount
};
const char* RejectionName(Rejection reason);

// How a TLS handshake on --tls-listen ended: the `result` label of
// balancer_tls_handshakes_total.
enum class HandshakeResult {
  kFull = 0,  // a new session
  kResumed,   // a session resumed (ticket or session cache)
  kFailed,    // not TLS, a refused version or cipher, no common ALPN protocol, a bad record
  kTimeout,   // not done within --header-timeout-ms (a slow handshake)
  kClosed,    // the client left or reset before it was done
  kCount
};
const char* HandshakeResultName(HandshakeResult result);

// The protocol a client request came in: the `protocol` label of
// balancer_requests_total ("http/1.1" covers HTTP/1.0 too).
enum class Protocol { kHttp1 = 0, kHttp2, kCount };
const char* ProtocolName(Protocol protocol);

// The kinds of HTTP/2 abuse that end a connection (H2Abuse in
// engine/h2_codec.h, same order): the `kind` label of balancer_h2_abuse_total.
inline constexpr size_t kH2AbuseKinds = 7;

class ProxyMetrics {
 public:
  explicit ProxyMetrics(prometheus::Registry& registry);
  ProxyMetrics(const ProxyMetrics&) = delete;
  ProxyMetrics& operator=(const ProxyMetrics&) = delete;

  // balancer_requests_total{code,protocol}; thread-safe, cached per code.
  prometheus::Counter& RequestsWithCode(int code, Protocol protocol);
  // Counters of balancer_upstream_requests_total{member,outcome} for one member.
  std::array<prometheus::Counter*, static_cast<size_t>(Outcome::kCount)> UpstreamCounters(const std::string& member);

  prometheus::Histogram& request_duration;  // balancer_request_duration_seconds
  prometheus::Counter& pool_updates;        // balancer_pool_updates_total
  prometheus::Counter& retries;             // balancer_retries_total
  prometheus::Counter& ejections;           // balancer_ejections_total
  prometheus::Counter& invalid_members;     // balancer_invalid_members_total
  prometheus::Counter& refused_members;     // balancer_refused_members_total (--member-allow)
  prometheus::Gauge& zk_connected;          // balancer_zk_connected
  prometheus::Gauge& members_healthy;       // balancer_pool_members{state="healthy"}
  prometheus::Gauge& members_ejected;       // balancer_pool_members{state="ejected"}
  prometheus::Gauge& client_connections;    // balancer_client_connections
  prometheus::Gauge& upgraded_connections;  // balancer_upgraded_connections (tunnels open)
  prometheus::Counter& rejected_connections;  // balancer_rejected_connections_total (over --max-connections)
  // balancer_refused_responses_total: member answers not relayed because their
  // framing cannot be relayed faithfully (the client got 502).
  prometheus::Counter& refused_responses;
  prometheus::Counter& interim_responses;  // balancer_interim_responses_total: 1xx relayed to clients
  // balancer_upstream_cut_answers_total{reason}: member answers that broke
  // off mid-body, so the client's connection or stream was cut: the member
  // reset or closed [kCutReset], went silent past --request-timeout-ms
  // [kCutTimeout], or broke its body's framing or its bounds [kCutFraming].
  static constexpr size_t kCutReset = 0, kCutTimeout = 1, kCutFraming = 2;
  std::array<prometheus::Counter*, 3> cut_answers{};
  std::array<prometheus::Counter*, static_cast<size_t>(Rejection::kCount)> rejected_requests;  // {reason}
  prometheus::Counter& access_log_written;  // balancer_access_log_lines_total{result="written"}
  prometheus::Counter& access_log_dropped;  // balancer_access_log_lines_total{result="dropped"}
  prometheus::Counter& spans_exported;      // balancer_spans_total{result="exported"} (--otlp-endpoint)
  prometheus::Counter& spans_dropped;       // balancer_spans_total{result="dropped"}
  // Restart and upgrade without a dropped request (control/handover.h).
  prometheus::Gauge& draining;                 // balancer_draining: 1 once this process drains
  prometheus::Counter& takeovers;              // balancer_takeovers_total: this process took over from another
  prometheus::Gauge& predecessor_connections;  // balancer_predecessor_connections: still open in the process it replaced
  HealthMetrics health;  // checks, outlier ejections, locality
  // The status page's counts (not exported to Prometheus): every answer the
  // clients got, and how many came over plain TCP [0] and TLS [1].
  AnswerStats client_answers;
  std::array<std::atomic<uint64_t>, 2> answers_by_transport{};
  // ... and by protocol: HTTP/1.x [0], HTTP/2 [1].
  std::array<std::atomic<uint64_t>, 2> answers_by_protocol{};

  // HTTP/2 (engine/h2_session.h).
  prometheus::Gauge& h2_connections;   // balancer_h2_connections: open HTTP/2 client connections
  prometheus::Counter& h2_streams;     // balancer_h2_streams_total: streams (requests) served
  // balancer_h2_abuse_total{kind}: connections ended with GOAWAY for abuse.
  std::array<prometheus::Counter*, kH2AbuseKinds> h2_abuse{};
  prometheus::Counter& h2_goaway_graceful;  // balancer_h2_goaways_total{code="no_error"}
  prometheus::Counter& h2_goaway_error;     // balancer_h2_goaways_total{code="error"} (protocol errors and abuse)

  // The edge cache (edge/edge_cache.h), brought up to date with its own
  // counts by RecordEdge when scraped (nothing on the request path).
  prometheus::Gauge* edge_objects = nullptr;   // balancer_edge_cache_objects
  prometheus::Gauge* edge_bytes = nullptr;     // balancer_edge_cache_bytes (charged, <= --edge-cache-bytes)
  prometheus::Gauge* edge_channel = nullptr;   // balancer_edge_cache_invalidation_channel: 1 while subscribed
  // From the admin thread only.
  void RecordEdge(const edge::EdgeStats& stats);

  // TLS termination.
  std::array<prometheus::Counter*, static_cast<size_t>(HandshakeResult::kCount)> tls_handshakes;  // {result}
  prometheus::Counter* tls_reloads_ok;      // balancer_tls_reloads_total{result="ok"}
  prometheus::Counter* tls_reloads_failed;  // balancer_tls_reloads_total{result="failed"} (old files kept)

 private:
  void RegisterTls(prometheus::Registry& registry);
  void RegisterEdge(prometheus::Registry& registry);

  // balancer_edge_cache_requests_total{result=hit|miss|refresh},
  // balancer_edge_cache_admissions_total{result=admitted|rejected|too_few_uses},
  // balancer_edge_cache_evictions_total, balancer_edge_cache_invalidations_total.
  prometheus::Counter* edge_hits_ = nullptr;
  prometheus::Counter* edge_misses_ = nullptr;
  prometheus::Counter* edge_refreshes_ = nullptr;
  prometheus::Counter* edge_admitted_ = nullptr;
  prometheus::Counter* edge_rejected_ = nullptr;
  prometheus::Counter* edge_too_few_uses_ = nullptr;
  prometheus::Counter* edge_evictions_ = nullptr;
  prometheus::Counter* edge_invalidations_ = nullptr;
  edge::EdgeStats edge_recorded_;  // what RecordEdge has counted so far

  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Counter>& upstream_;
  std::array<std::array<std::atomic<prometheus::Counter*>, 600>, 2> by_code_{};
};

}  // namespace webtier::balancer
