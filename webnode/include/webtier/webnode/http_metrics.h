// The webnode's per-request metrics: webnode_http_requests_total{route,method,code},
// webnode_http_request_duration_seconds{route} and webnode_inflight_requests.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <string>
#include <string_view>
#include <unordered_map>

#include "webtier/common/mutex.h"
#include "webtier/common/thread_annotations.h"

namespace webtier::webnode {

// Thread-safe. Label sets are resolved once and cached, so recording a
// request is a hash lookup plus atomic adds. Route labels must be
// low-cardinality (route templates like "/api/primes", never raw paths).
class HttpMetrics {
 public:
  explicit HttpMetrics(prometheus::Registry& registry);

  void Record(std::string_view route, std::string_view method, int code, double seconds) WEBTIER_EXCLUDES(mu_);
  prometheus::Gauge& inflight() { return inflight_; }
  // webnode_http_refused_total{reason}: a request refused before any route
  // (too_many_fields, bad_target, bad_host, misdirected, too_large, unparsable).
  void Refused(std::string_view reason) WEBTIER_EXCLUDES(mu_);

 private:
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& duration_;
  prometheus::Gauge& inflight_;
  prometheus::Family<prometheus::Counter>& refused_;
  Mutex mu_;
  std::unordered_map<std::string, prometheus::Counter*> counters_ WEBTIER_GUARDED_BY(mu_);
  std::unordered_map<std::string, prometheus::Histogram*> histograms_ WEBTIER_GUARDED_BY(mu_);
  std::unordered_map<std::string, prometheus::Counter*> refused_counters_ WEBTIER_GUARDED_BY(mu_);
};

}  // namespace webtier::webnode
