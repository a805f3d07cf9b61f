// Metric registration for the cache and the origin.
#include "webtier/cache/cache_metrics.h"

#include "webtier/monitoring/metrics.h"

namespace webtier::cache {
namespace {

prometheus::Family<prometheus::Counter>& Counters(prometheus::Registry& r, const char* name, const char* help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(r);
}

prometheus::Family<prometheus::Counter>& Lookups(prometheus::Registry& r) {
  return Counters(r, "webnode_cache_lookups_total", "Requests that went through the response cache, by X-Cache result.");
}

prometheus::Family<prometheus::Counter>& Coalesced(prometheus::Registry& r) {
  return Counters(r, "webnode_cache_coalesced_total",
                  "Misses answered by another request's origin fetch (scope node: same process, tier: another node).");
}

}  // namespace

CacheMetrics::CacheMetrics(prometheus::Registry& r)
    : hit(Lookups(r).Add({{"result", "hit"}})),
      miss(Lookups(r).Add({{"result", "miss"}})),
      stale(Lookups(r).Add({{"result", "stale"}})),
      bypass(Lookups(r).Add({{"result", "bypass"}})),
      hot_hits(Counters(r, "webnode_cache_hot_hits_total",
                        "Hits answered from this node's short-lived hot copy without a Redis read (part of result=hit).")
                   .Add({})),
      corrupt_records(Counters(r, "webnode_cache_corrupt_records_total",
                               "Stored records that failed to decode (treated as misses and overwritten).")
                          .Add({})),
      stores(Counters(r, "webnode_cache_stores_total", "Responses written to the shared cache.").Add({})),
      fenced_fills(Counters(r, "webnode_cache_fenced_fills_total",
                            "Origin answers not written to the shared cache because their URL or a Surrogate-Key "
                            "tag was purged while they were fetched.")
                       .Add({})),
      coalesced_local(Coalesced(r).Add({{"scope", "node"}})),
      coalesced_remote(Coalesced(r).Add({{"scope", "tier"}})),
      revalidations(Counters(r, "webnode_cache_revalidations_total",
                             "Background refreshes started for entries served STALE.")
                        .Add({})),
      stale_if_error(Counters(r, "webnode_cache_stale_if_error_total",
                              "Stale entries served because the origin failed or timed out.")
                         .Add({})),
      purges(Counters(r, "webnode_cache_purges_total", "Entries removed by POST /admin/purge.").Add({})),
      breaker_open(prometheus::BuildGauge()
                       .Name("webnode_cache_breaker_open")
                       .Help("1 while the Redis circuit breaker is open (requests bypass the cache).")
                       .Register(r)
                       .Add({})),
      redis_errors(Counters(r, "webnode_redis_errors_total", "Failed Redis commands (timeouts, refused, lost).").Add({})),
      orphan_locks(Counters(r, "webnode_cache_orphan_locks_released_total",
                            "Fill locks of unknown fate (a take that timed out, a release that failed) released "
                            "once Redis answered again.")
                       .Add({})),
      origin_requests(Counters(r, "webnode_origin_requests_total",
                               "Fetches from the origin (the built-in app's routes or --origin).")
                          .Add({})),
      origin_errors(Counters(r, "webnode_origin_errors_total",
                             "Origin fetches that failed: transport errors, timeouts and 5xx answers.")
                        .Add({})),
      origin_duration(prometheus::BuildHistogram()
                          .Name("webnode_origin_duration_seconds")
                          .Help("Time spent fetching from the origin.")
                          .Register(r)
                          .Add({}, metrics::LatencyBuckets())) {}

}  // namespace webtier::cache
