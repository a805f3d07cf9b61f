// Registration of the balancer metrics.
#include "webtier/balancer/telemetry/proxy_metrics.h"

#include "webtier/monitoring/metrics.h"

namespace webtier::balancer {

const char* RejectionName(Rejection reason) {
  switch (reason) {
    case Rejection::kBadRequest: return "bad_request";
    case Rejection::kSmuggling: return "smuggling";
    case Rejection::kHeaderTooLarge: return "header_too_large";
    case Rejection::kBodyTooLarge: return "body_too_large";
    case Rejection::kHeaderTimeout: return "header_timeout";
    case Rejection::kUnsupportedCoding: return "unsupported_coding";
    case Rejection::kAdminPath: return "admin_path";
    case Rejection::kTooManyFields: return "too_many_fields";
    case Rejection::kMisdirected: return "misdirected";
    case Rejection::kChunkLine: return "chunk_line_too_long";
    case Rejection::kTrailerTooLarge: return "trailer_too_large";
    case Rejection::kBodyTimeout: return "body_timeout";
    case Rejection::kCount: break;
  }
  return "unknown";
}

const char* HandshakeResultName(HandshakeResult result) {
  switch (result) {
    case HandshakeResult::kFull: return "full";
    case HandshakeResult::kResumed: return "resumed";
    case HandshakeResult::kFailed: return "failed";
    case HandshakeResult::kTimeout: return "timeout";
    case HandshakeResult::kClosed: return "closed";
    case HandshakeResult::kCount: break;
  }
  return "unknown";
}

namespace {

constexpr char kSpansHelp[] = "Spans sent to --otlp-endpoint (exported) or dropped: queue full, collector slow or away.";
constexpr const char* kGoawayHelp =
    "GOAWAY frames sent to HTTP/2 clients: no_error ends a connection gracefully (drain, idle), error for a "
    "protocol error or abuse.";
constexpr const char* kAccessLogHelp =
    "Access log lines, by what became of them: written, or dropped because the writer could not keep up (or a "
    "write failed).";

prometheus::Family<prometheus::Counter>& CounterFamily(prometheus::Registry& r, const char* name, const char* help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(r);
}
prometheus::Family<prometheus::Gauge>& GaugeFamily(prometheus::Registry& r, const char* name, const char* help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(r);
}

}  // namespace

ProxyMetrics::ProxyMetrics(prometheus::Registry& r)
    : request_duration(prometheus::BuildHistogram()
                           .Name("balancer_request_duration_seconds")
                           .Help("Time from the end of the request header to the end of the response.")
                           .Register(r)
                           .Add({}, metrics::LatencyBuckets())),
      pool_updates(CounterFamily(r, "balancer_pool_updates_total", "Membership changes applied to the pool.").Add({})),
      retries(CounterFamily(r, "balancer_retries_total", "Extra attempts on another member.").Add({})),
      ejections(CounterFamily(r, "balancer_ejections_total", "Members ejected after refusing connections.").Add({})),
      invalid_members(CounterFamily(r, "balancer_invalid_members_total",
                                    "Member records ignored because they are not valid serverset JSON.")
                          .Add({})),
      refused_members(CounterFamily(r, "balancer_refused_members_total",
                                    "Member records left out of the pool because --member-allow refuses their "
                                    "resolved address.")
                          .Add({})),
      zk_connected(GaugeFamily(r, "balancer_zk_connected", "1 while connected to ZooKeeper.").Add({})),
      members_healthy(GaugeFamily(r, "balancer_pool_members", "Members in the pool by state.").Add({{"state", "healthy"}})),
      members_ejected(GaugeFamily(r, "balancer_pool_members", "Members in the pool by state.").Add({{"state", "ejected"}})),
      client_connections(GaugeFamily(r, "balancer_client_connections", "Open client connections.").Add({})),
      upgraded_connections(
          GaugeFamily(r, "balancer_upgraded_connections", "Upgraded (tunnelled) client connections open.").Add({})),
      rejected_connections(CounterFamily(r, "balancer_rejected_connections_total",
                                         "Client connections closed at accept (over --max-connections).")
                               .Add({})),
      refused_responses(CounterFamily(r, "balancer_refused_responses_total",
                                      "Member answers refused (502 to the client) because their framing cannot be "
                                      "relayed faithfully.")
                            .Add({})),
      interim_responses(
          CounterFamily(r, "balancer_interim_responses_total", "Interim (1xx) member answers relayed to clients.")
              .Add({})),
      access_log_written(CounterFamily(r, "balancer_access_log_lines_total", kAccessLogHelp).Add({{"result", "written"}})),
      access_log_dropped(CounterFamily(r, "balancer_access_log_lines_total", kAccessLogHelp).Add({{"result", "dropped"}})),
      spans_exported(CounterFamily(r, "balancer_spans_total", kSpansHelp).Add({{"result", "exported"}})),
      spans_dropped(CounterFamily(r, "balancer_spans_total", kSpansHelp).Add({{"result", "dropped"}})),
      draining(GaugeFamily(r, "balancer_draining",
                           "1 once this process drains (SIGTERM, or its sockets handed to a successor).")
                   .Add({})),
      takeovers(CounterFamily(r, "balancer_takeovers_total",
                              "Times this process started on the listening sockets of a balancer it replaced.")
                    .Add({})),
      predecessor_connections(GaugeFamily(r, "balancer_predecessor_connections",
                                          "Client connections still open in the balancer process this one replaced "
                                          "(0 once it exited).")
                                  .Add({})),
      health(r),
      h2_connections(GaugeFamily(r, "balancer_h2_connections", "Open HTTP/2 client connections.").Add({})),
      h2_streams(CounterFamily(r, "balancer_h2_streams_total", "HTTP/2 streams (requests) served.").Add({})),
      h2_goaway_graceful(CounterFamily(r, "balancer_h2_goaways_total", kGoawayHelp).Add({{"code", "no_error"}})),
      h2_goaway_error(CounterFamily(r, "balancer_h2_goaways_total", kGoawayHelp).Add({{"code", "error"}})),
      requests_(CounterFamily(r, "balancer_requests_total", "Client requests answered, by status code and protocol.")),
      upstream_(CounterFamily(r, "balancer_upstream_requests_total", "Attempts sent to members, by outcome.")) {
  auto& rejected = CounterFamily(r, "balancer_rejected_requests_total",
                                 "Client requests refused before reaching a member, by reason.");
  for (size_t i = 0; i < rejected_requests.size(); ++i)
    rejected_requests[i] = &rejected.Add({{"reason", RejectionName(static_cast<Rejection>(i))}});
  for (auto& p : by_code_)
    for (auto& c : p) c.store(nullptr);
  auto& abuse = CounterFamily(r, "balancer_h2_abuse_total", "HTTP/2 connections ended with GOAWAY for abuse, by kind.");
  static constexpr const char* kAbuse[kH2AbuseKinds] = {"rapid_reset", "control_flood", "continuation_flood",
                                                        "ack_flood", "memory", "reset_flood", "protocol_error"};
  for (size_t i = 0; i < kH2AbuseKinds; ++i) h2_abuse[i] = &abuse.Add({{"kind", kAbuse[i]}});
  auto& cut = CounterFamily(r, "balancer_upstream_cut_answers_total",
                            "Member answers that broke off mid-body (the client's connection or stream was cut), "
                            "by reason.");
  static constexpr const char* kCut[] = {"reset", "timeout", "framing"};
  for (size_t i = 0; i < cut_answers.size(); ++i) cut_answers[i] = &cut.Add({{"reason", kCut[i]}});
  RegisterTls(r);
  RegisterEdge(r);
}

void ProxyMetrics::RegisterEdge(prometheus::Registry& r) {
  auto& requests = CounterFamily(r, "balancer_edge_cache_requests_total",
                                 "Lookups in the edge cache: hit (answered from memory), miss, refresh (a hit due "
                                 "back from the tier, forwarded).");
  edge_hits_ = &requests.Add({{"result", "hit"}});
  edge_misses_ = &requests.Add({{"result", "miss"}});
  edge_refreshes_ = &requests.Add({{"result", "refresh"}});
  auto& admissions = CounterFamily(r, "balancer_edge_cache_admissions_total",
                                   "Answers offered to the edge cache: admitted, or rejected (admission lost to a "
                                   "more popular object, too large, invalidated while fetched or less than a second "
                                   "before); too_few_uses: not "
                                   "offered, their URL asked for fewer than --edge-cache-min-uses times lately.");
  edge_admitted_ = &admissions.Add({{"result", "admitted"}});
  edge_rejected_ = &admissions.Add({{"result", "rejected"}});
  edge_too_few_uses_ = &admissions.Add({{"result", "too_few_uses"}});
  edge_evictions_ = &CounterFamily(r, "balancer_edge_cache_evictions_total",
                                   "Objects evicted from the edge cache to make room.")
                         .Add({});
  edge_invalidations_ = &CounterFamily(r, "balancer_edge_cache_invalidations_total",
                                       "Objects erased from the edge cache by purges and invalidations.")
                             .Add({});
  edge_objects = &GaugeFamily(r, "balancer_edge_cache_objects", "Objects in the edge cache.").Add({});
  edge_bytes = &GaugeFamily(r, "balancer_edge_cache_bytes", "Bytes the edge cache's objects are charged.").Add({});
  edge_channel = &GaugeFamily(r, "balancer_edge_cache_invalidation_channel",
                              "1 while the edge cache follows the tier's invalidation channel (--edge-redis).")
                      .Add({});
}

void ProxyMetrics::RecordEdge(const edge::EdgeStats& s) {
  auto add = [](prometheus::Counter* c, uint64_t now, uint64_t& was) {
    if (now > was) c->Increment(static_cast<double>(now - was));
    was = now;
  };
  add(edge_hits_, s.hits, edge_recorded_.hits);
  add(edge_misses_, s.misses, edge_recorded_.misses);
  add(edge_refreshes_, s.refreshes, edge_recorded_.refreshes);
  add(edge_admitted_, s.inserts, edge_recorded_.inserts);
  add(edge_rejected_, s.rejected, edge_recorded_.rejected);
  add(edge_too_few_uses_, s.too_few_uses, edge_recorded_.too_few_uses);
  add(edge_evictions_, s.evictions, edge_recorded_.evictions);
  add(edge_invalidations_, s.erased, edge_recorded_.erased);
  edge_objects->Set(static_cast<double>(s.objects));
  edge_bytes->Set(static_cast<double>(s.bytes));
}

void ProxyMetrics::RegisterTls(prometheus::Registry& r) {
  auto& handshakes = CounterFamily(r, "balancer_tls_handshakes_total", "TLS handshakes on --tls-listen, by result.");
  for (size_t i = 0; i < tls_handshakes.size(); ++i)
    tls_handshakes[i] = &handshakes.Add({{"result", HandshakeResultName(static_cast<HandshakeResult>(i))}});
  auto& reloads = CounterFamily(r, "balancer_tls_reloads_total",
                                "Certificate reloads on SIGHUP, by result (failed: the old certificate stays).");
  tls_reloads_ok = &reloads.Add({{"result", "ok"}});
  tls_reloads_failed = &reloads.Add({{"result", "failed"}});
}

const char* ProtocolName(Protocol protocol) { return protocol == Protocol::kHttp2 ? "h2" : "http/1.1"; }

prometheus::Counter& ProxyMetrics::RequestsWithCode(int code, Protocol protocol) {
  if (code < 100 || code >= 600) code = 599;
  auto& slot = by_code_[protocol == Protocol::kHttp2 ? 1 : 0][code];
  prometheus::Counter* c = slot.load(std::memory_order_acquire);
  if (c == nullptr) {
    // The same object for the same labels.
    c = &requests_.Add({{"code", std::to_string(code)}, {"protocol", ProtocolName(protocol)}});
    slot.store(c, std::memory_order_release);
  }
  return *c;
}

std::array<prometheus::Counter*, static_cast<size_t>(Outcome::kCount)> ProxyMetrics::UpstreamCounters(
    const std::string& member) {
  std::array<prometheus::Counter*, static_cast<size_t>(Outcome::kCount)> out{};
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = &upstream_.Add({{"member", member}, {"outcome", OutcomeName(static_cast<Outcome>(i))}});
  return out;
}

}  // namespace webtier::balancer
