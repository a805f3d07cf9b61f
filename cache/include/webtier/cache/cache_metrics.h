// The cache's and origin's Prometheus metrics (names as in docs/reference.md),
// resolved once so hot paths only touch lock-free counters.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace webtier::cache {

// Registers on construction; the registry must outlive it. Updating is thread-safe.
struct CacheMetrics {
  explicit CacheMetrics(prometheus::Registry& registry);

  // webnode_cache_lookups_total{result}: one per request that went through the cache.
  prometheus::Counter& hit;
  prometheus::Counter& miss;
  prometheus::Counter& stale;
  prometheus::Counter& bypass;
  prometheus::Counter& hot_hits;          // webnode_cache_hot_hits_total: hits from this node's hot copy (part of hit)
  prometheus::Counter& corrupt_records;   // webnode_cache_corrupt_records_total
  prometheus::Counter& stores;            // webnode_cache_stores_total
  prometheus::Counter& fenced_fills;      // webnode_cache_fenced_fills_total
  prometheus::Counter& coalesced_local;   // webnode_cache_coalesced_total{scope="node"}
  prometheus::Counter& coalesced_remote;  // webnode_cache_coalesced_total{scope="tier"}
  prometheus::Counter& revalidations;     // webnode_cache_revalidations_total (stale-while-revalidate)
  prometheus::Counter& stale_if_error;    // webnode_cache_stale_if_error_total
  prometheus::Counter& purges;            // webnode_cache_purges_total
  prometheus::Gauge& breaker_open;        // webnode_cache_breaker_open (0/1)
  prometheus::Counter& redis_errors;      // webnode_redis_errors_total
  prometheus::Counter& orphan_locks;      // webnode_cache_orphan_locks_released_total
  prometheus::Counter& origin_requests;   // webnode_origin_requests_total
  prometheus::Counter& origin_errors;     // webnode_origin_errors_total (transport failures and 5xx)
  prometheus::Histogram& origin_duration; // webnode_origin_duration_seconds
};

}  // namespace webtier::cache
