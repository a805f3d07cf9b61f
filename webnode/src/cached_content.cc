// The ContentService wiring: the webnode's Request to the ResponseCache,
// Outcome back out through the webnode's Reply.
#include "webtier/webnode/cached_content.h"

#include <nlohmann/json.hpp>
#include <prometheus/counter.h>

#include "webtier/cache/cache_metrics.h"
#include "webtier/cache/circuit_breaker.h"
#include "webtier/cache/clock.h"
#include "webtier/webnode/curl_origin.h"
#include "webtier/webnode/http_origin.h"
#include "webtier/cache/hot_cache.h"
#include "webtier/cache/redis_master.h"
#include "webtier/cache/redis_store.h"
#include "webtier/cache/response_cache.h"
#include "webtier/cache/worker_pool.h"
#include "webtier/common/log.h"
#include "webtier/common/otlp.h"
#include "webtier/common/trace_context.h"
#include "webtier/webnode/demo_app.h"

namespace webtier::webnode {
namespace {

using namespace cache;

// Origin fetches, demo CPU work and lock waits all park a worker; slow ones
// (/api/sleep) must not starve the rest, so there are many more than cores.
constexpr size_t kWorkerThreads = 64;
// The hot copy: a hit on a hot key skips the Redis round trip for
// kHotCopyWindow (hot_cache.h). Purges reach it through kPurgeChannel;
// everything else it serves is fresh.
constexpr size_t kHotEntries = 10000;

std::string PercentDecode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    if (in[i] == '%' && i + 2 < in.size() && hex(in[i + 1]) >= 0 && hex(in[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(in[i + 1]) * 16 + hex(in[i + 2])));
      i += 2;
    } else if (in[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(in[i]);
    }
  }
  return out;
}

// Compares without an early exit, so timing does not reveal the token.
bool SameSecret(std::string_view a, std::string_view b) {
  if (a.size() != b.size() || b.empty()) return false;
  unsigned diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i]);
  return diff == 0;
}

void Send(Reply& reply, Outcome outcome) {
  reply.set_route(outcome.route);
  std::string content_type;
  std::string cache_status = CacheStatusField(outcome);
  for (auto& [name, value] : outcome.response.headers) {
    if (EqualsIgnoreCase(name, "Content-Type")) {
      content_type = value;
    } else if (EqualsIgnoreCase(name, "Cache-Status")) {
      cache_status = value + ", " + cache_status;  // caches nearer the origin come first (RFC 9211)
    } else if (!IsHopByHopOrLength(name) && !EqualsIgnoreCase(name, "X-Served-By") && !EqualsIgnoreCase(name, "X-Cache") &&
               !(EqualsIgnoreCase(name, "Age") && outcome.age_seconds.has_value()) &&
               !EqualsIgnoreCase(name, "Server")) {
      reply.AddHeader(name, value);
    }
  }
  if (outcome.cache != CacheStatus::kNone) reply.AddHeader("X-Cache", std::string(CacheStatusName(outcome.cache)));
  if (outcome.cache != CacheStatus::kNone || outcome.forward != Forward::kNone) {
    reply.AddHeader("Cache-Status", std::move(cache_status));
  }
  if (outcome.age_seconds.has_value()) reply.AddHeader("Age", std::to_string(*outcome.age_seconds));
  if (content_type.empty() && !outcome.response.body.empty()) content_type = "application/octet-stream";
  reply.Send(outcome.response.status, std::move(outcome.response.body), content_type);
}

// The breaker's epoch: a failover to another master ends its cool-down.
std::function<uint64_t()> MasterGeneration(std::shared_ptr<RedisMaster> master) {
  if (!master) return nullptr;
  return [master = std::move(master)] {
    net::HostPort address;
    uint64_t generation = 0;
    return master->Current(&address, &generation).ok() ? generation : 0;
  };
}

// The origin as a span (--otlp-endpoint): each fetch is a child of the
// request's span, which the server put in the request's traceparent, and
// the origin sees the fetch's span as its parent.
class TracedOrigin final : public Origin {
 public:
  TracedOrigin(std::unique_ptr<Origin> inner, otlp::Exporter* spans, std::string origin_url)
      : inner_(std::move(inner)), spans_(spans), origin_url_(std::move(origin_url)) {}

  Status Fetch(const Request& request, Response* response) override {  // cache::Origin
    const std::string parent_line = std::string(FindHeader(request.headers, "traceparent"));
    const std::optional<TraceParent> parent = ParseTraceparent(parent_line);  // views into parent_line
    if (!parent) return inner_->Fetch(request, response);
    const RequestTrace mine = ChildOf(parent);
    Request sent = request;
    for (auto& [name, value] : sent.headers) {
      if (EqualsIgnoreCase(name, "traceparent")) value = TraceparentValue(mine);
    }
    otlp::Span span;
    span.trace_id.assign(mine.trace_id, kTraceIdLength);
    span.span_id.assign(mine.span_id, kSpanIdLength);
    span.parent_span_id = std::string(parent->parent_id);
    span.kind = otlp::SpanKind::kClient;
    span.name = request.method + " origin";
    span.start = std::chrono::system_clock::now();
    const Status s = inner_->Fetch(sent, response);
    span.end = std::chrono::system_clock::now();
    span.attributes = {{"http.request.method", request.method},
                       {"url.full", origin_url_ + request.path + (request.query.empty() ? "" : "?" + request.query)}};
    if (s.ok()) {
      span.attributes.push_back({"http.response.status_code", static_cast<int64_t>(response->status)});
      span.error = response->status >= 500;
    } else {
      span.attributes.push_back({"error.type", s.ToString()});
      span.error = true;
    }
    spans_->Export(std::move(span));
    return s;
  }

 private:
  std::unique_ptr<Origin> inner_;
  otlp::Exporter* spans_;
  std::string origin_url_;
};

void SendJson(Reply& reply, int status, std::string body) {
  reply.Send(status, std::move(body), "application/json");
}

class CachedContent final : public ContentService {
 public:
  CachedContent(const Config& config, prometheus::Registry& registry, std::shared_ptr<RedisMaster> redis_master,
                std::vector<Route> routes, otlp::Exporter* spans)
      : admin_token_(config.admin_token),
        origin_url_(config.origin),
        metrics_(registry),
        breaker_(BreakerOptions{}, &SystemClock::Get(), MasterGeneration(redis_master)) {
    for (auto& r : routes) routes_.Add(std::move(r));
    if (config.origin.empty()) {
      AddDemoRoutes(&routes_, config.id);
    } else {
      // http:// with the webnode's own client (a miss costs less CPU);
      // https:// and anything else with libcurl.
      if (HttpOrigin::Handles(config.origin)) {
        origin_ = std::make_unique<HttpOrigin>(HttpOriginOptions{.base_url = config.origin, .host = config.origin_host});
      } else {
        origin_ = std::make_unique<CurlOrigin>(CurlOriginOptions{.base_url = config.origin, .host = config.origin_host});
      }
      if (spans != nullptr) origin_ = std::make_unique<TracedOrigin>(std::move(origin_), spans, config.origin);
    }
    if (redis_master) {
      RedisOptions redis;
      redis.master = std::move(redis_master);
      redis.password = config.redis_password;
      store_ = std::make_unique<RedisStore>(redis);
      hot_ = std::make_unique<HotCache>(kHotEntries, kHotCopyWindow, &SystemClock::Get());
      purges_ = std::make_unique<RedisSubscriber>(redis, kPurgeChannel,
                                                  [hot = hot_.get()](const std::string& key) { hot->EraseWithVariants(key); });
    } else {
      log::Warn("cache", "no --redis nor --redis-sentinel: the response cache is off");
    }
    CacheOptions options;
    // With --origin-host the origin always sees that one Host: the key need not name the client's.
    options.key_includes_host = config.origin_host.empty();
    options.default_ttl = std::chrono::seconds(config.cache_ttl);  // heuristic freshness cap
    options.node_id = config.id;
    if (config.test_record_version != 0) options.record_version = static_cast<uint8_t>(config.test_record_version);
    workers_ = std::make_unique<WorkerPool>("origin", kWorkerThreads);
    ResponseCache::Parts parts;
    parts.routes = &routes_;
    parts.origin = origin_.get();
    parts.store = store_.get();
    parts.hot = hot_.get();
    parts.breaker = &breaker_;
    parts.workers = workers_.get();
    parts.metrics = &metrics_;
    parts.clock = &SystemClock::Get();
    cache_ = std::make_unique<ResponseCache>(options, parts);
  }

  ~CachedContent() override {
    workers_.reset();  // queued fills finish while the cache they use is alive
  }

  void DescribeDependencies(nlohmann::json* out) const override {  // webnode::ContentService
    const char* redis = "off";
    if (store_) {
      switch (breaker_.state()) {
        case CircuitBreaker::State::kClosed: redis = "ok"; break;
        case CircuitBreaker::State::kOpen: redis = "bypassed"; break;  // failing: requests skip the cache
        case CircuitBreaker::State::kHalfOpen: redis = "probing"; break;
      }
    }
    (*out)["redis"] = redis;
    (*out)["origin"] = {{"url", origin_url_.empty() ? "built-in demo app" : origin_url_},
                        {"requests", metrics_.origin_requests.Value()},
                        {"errors", metrics_.origin_errors.Value()}};
  }

  void Handle(Request req, Reply reply) override {  // webnode::ContentService
    auto shared = std::make_shared<Reply>(std::move(reply));
    cache_->Serve(std::move(req), [shared](Outcome outcome) { Send(*shared, std::move(outcome)); });
  }

  void HandleAdmin(Request req, Reply reply) override {  // webnode::ContentService
    if (req.path != "/admin/purge") {
      reply.set_route("/admin");
      SendJson(reply, 404, R"({"error":"not found"})");
      return;
    }
    reply.set_route("/admin/purge");
    if (req.method != "POST") {
      reply.AddHeader("Allow", "POST");
      SendJson(reply, 405, R"({"error":"method not allowed"})");
      return;
    }
    if (admin_token_.empty()) {
      SendJson(reply, 403, R"json({"error":"admin routes are disabled (no --admin-token)"})json");
      return;
    }
    std::string_view auth = FindHeader(req.headers, "Authorization");
    constexpr std::string_view kBearer = "Bearer ";
    if (auth.substr(0, kBearer.size()) != kBearer || !SameSecret(auth.substr(kBearer.size()), admin_token_)) {
      reply.AddHeader("WWW-Authenticate", "Bearer");
      SendJson(reply, 401, R"({"error":"missing or wrong admin token"})");
      return;
    }
    std::string path, tag;
    for (std::string_view q = req.query; !q.empty();) {
      size_t amp = q.find('&');
      std::string_view param = q.substr(0, amp);
      if (param.substr(0, 5) == "path=") path = PercentDecode(param.substr(5));
      if (param.substr(0, 4) == "tag=") tag = PercentDecode(param.substr(4));
      if (amp == std::string_view::npos) break;
      q.remove_prefix(amp + 1);
    }
    if (tag.empty() && (path.empty() || path.front() != '/')) {
      SendJson(reply, 400, R"({"error":"path=/... or tag=... is required"})");
      return;
    }
    // A few Redis commands, bounded by their timeouts, but still off the reactor.
    auto shared = std::make_shared<Reply>(std::move(reply));
    const bool queued = workers_->Submit([this, shared, path, tag] {
      size_t urls = 0;
      Status s = tag.empty() ? cache_->Purge(path) : cache_->PurgeTag(tag, &urls);
      if (!s.ok()) {
        SendJson(*shared, 503, R"({"error":"cache unavailable"})");
      } else if (tag.empty()) {
        SendJson(*shared, 200, nlohmann::json{{"purged", path}}.dump());
      } else {
        SendJson(*shared, 200, nlohmann::json{{"purged_tag", tag}, {"urls", urls}}.dump());
      }
    });
    if (!queued) SendJson(*shared, 503, R"({"error":"overloaded"})");
  }

 private:

  const std::string admin_token_;
  const std::string origin_url_;  // --origin; empty = the demo app
  CacheMetrics metrics_;
  RouteTable routes_;
  CircuitBreaker breaker_;
  std::unique_ptr<Origin> origin_;
  std::unique_ptr<RedisStore> store_;
  std::unique_ptr<HotCache> hot_;
  std::unique_ptr<RedisSubscriber> purges_;  // erases from hot_ on its own thread
  std::unique_ptr<ResponseCache> cache_;
  std::unique_ptr<WorkerPool> workers_;  // reset first in the destructor
};

}  // namespace

std::unique_ptr<ContentService> MakeCachedContent(const Config& config, prometheus::Registry& registry,
                                                  std::shared_ptr<cache::RedisMaster> redis_master,
                                                  std::vector<cache::Route> routes, otlp::Exporter* spans) {
  return std::make_unique<CachedContent>(config, registry, std::move(redis_master), std::move(routes), spans);
}

std::unique_ptr<otlp::Exporter> MakeSpanExporter(const Config& config, prometheus::Registry& registry) {
  // Registered with export off too (zero), so dashboards show the series.
  auto& family = prometheus::BuildCounter()
                     .Name("webnode_spans_total")
                     .Help("Spans sent to --otlp-endpoint (exported) or dropped: queue full, collector slow or away.")
                     .Register(registry);
  prometheus::Counter* exported = &family.Add({{"result", "exported"}});
  prometheus::Counter* dropped = &family.Add({{"result", "dropped"}});
  if (config.otlp_endpoint.empty()) return nullptr;
  otlp::Exporter::Options options{.endpoint = config.otlp_endpoint, .service = "webtier-webnode"};
  options.on_result = [exported, dropped](uint64_t e, uint64_t d) {
    exported->Increment(static_cast<double>(e));
    dropped->Increment(static_cast<double>(d));
  };
  std::unique_ptr<otlp::Exporter> spans;
  if (Status s = otlp::Exporter::Create(std::move(options), &spans); !s.ok())  // Finalize checked the endpoint
    log::Error("otlp", "no span export").kv("err", s.ToString());
  return spans;
}

}  // namespace webtier::webnode
