// Cached label-set resolution for the webnode's request metrics.
#include "webtier/webnode/http_metrics.h"

#include "webtier/monitoring/metrics.h"

namespace webtier::webnode {

HttpMetrics::HttpMetrics(prometheus::Registry& registry)
    : requests_(prometheus::BuildCounter()
                    .Name("webnode_http_requests_total")
                    .Help("HTTP requests answered, by route template, method and status code.")
                    .Register(registry)),
      duration_(prometheus::BuildHistogram()
                    .Name("webnode_http_request_duration_seconds")
                    .Help("Time from request parsed to response queued, by route template.")
                    .Register(registry)),
      inflight_(prometheus::BuildGauge()
                    .Name("webnode_inflight_requests")
                    .Help("Requests received and not yet answered.")
                    .Register(registry)
                    .Add({})),
      refused_(prometheus::BuildCounter()
                   .Name("webnode_http_refused_total")
                   .Help("Requests refused before any route, by reason (too_many_fields, bad_target, bad_host, "
                         "misdirected, too_large, unparsable).")
                   .Register(registry)) {
  for (const char* reason : {"too_many_fields", "bad_target", "bad_host", "misdirected", "too_large", "unparsable"}) {
    refused_counters_.emplace(reason, &refused_.Add({{"reason", reason}}));
  }
}

void HttpMetrics::Refused(std::string_view reason) {
  MutexLock l(&mu_);
  auto c = refused_counters_.find(std::string(reason));
  if (c == refused_counters_.end()) {
    c = refused_counters_.emplace(std::string(reason), &refused_.Add({{"reason", std::string(reason)}})).first;
  }
  c->second->Increment();
}

void HttpMetrics::Record(std::string_view route, std::string_view method, int code, double seconds) {
  std::string key;
  key.reserve(route.size() + method.size() + 6);
  key.append(route).push_back('\n');
  key.append(method).push_back('\n');
  key.append(std::to_string(code));
  prometheus::Counter* counter;
  prometheus::Histogram* histogram;
  {
    MutexLock l(&mu_);
    auto c = counters_.find(key);
    if (c == counters_.end()) {
      c = counters_
              .emplace(key, &requests_.Add({{"route", std::string(route)},
                                            {"method", std::string(method)},
                                            {"code", std::to_string(code)}}))
              .first;
    }
    counter = c->second;
    auto h = histograms_.find(std::string(route));
    if (h == histograms_.end()) {
      h = histograms_
              .emplace(std::string(route),
                       &duration_.Add({{"route", std::string(route)}}, metrics::LatencyBuckets()))
              .first;
    }
    histogram = h->second;
  }
  counter->Increment();
  histogram->Observe(seconds);
}

}  // namespace webtier::webnode
