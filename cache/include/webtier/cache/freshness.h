// What RFC 9111 says about one response a shared cache received: whether it
// may be stored (3), for how long it is fresh (4.2.1: CDN-Cache-Control per
// RFC 9213, then s-maxage, max-age, Expires, then heuristic freshness from
// Last-Modified only), its corrected initial age (4.2.3, the origin's Age and
// the response delay counted), and whether it may ever be served stale.
// Pure functions, thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "webtier/cache/cache_control.h"
#include "webtier/cache/message.h"

namespace webtier::cache {

struct FreshnessOptions {
  std::optional<int64_t> policy_ttl_s;  // a route's own TTL: wins over everything the response says
  int64_t heuristic_cap_s = 60;         // --cache-ttl: heuristic freshness never exceeds it; 0 = none
  int64_t stale_if_error_s = 300;       // the node's grace when the origin fails (no stale-if-error)
};

struct Freshness {
  bool storable = false;
  bool heuristic = false;         // the lifetime is a heuristic one
  int64_t lifetime_ms = 0;        // freshness lifetime (0 = stale at once)
  int64_t initial_age_ms = 0;     // corrected_initial_age (RFC 9111 4.2.3)
  bool no_stale = false;          // must-revalidate, proxy-revalidate, s-maxage or no-cache
  bool always_revalidate = false; // no-cache: revalidated before every use
  int64_t swr_ms = 0;             // stale-while-revalidate window (the response's only)
  int64_t sie_ms = 0;             // stale-if-error window (response's, else the node's)
  std::vector<std::string> drop_fields;  // fields named by no-cache="..." / private="..."
};

// All field lines named `name` joined with ", " (RFC 9110 5.3); "" when absent.
std::string JoinedField(const Headers& headers, std::string_view name);

// The directives this cache obeys: CDN-Cache-Control when present and valid
// (RFC 9213), else Cache-Control. `*targeted` tells which.
CacheControl EffectiveCacheControl(const Headers& headers, bool* targeted = nullptr);

// Statuses cacheable by heuristic freshness (RFC 9110 15.1).
bool HeuristicallyCacheable(int status);

// `request_ms` / `response_ms`: Unix ms when the request was sent and the
// response received. The response must be to a GET.
Freshness Assess(const Response& response, int64_t request_ms, int64_t response_ms, const FreshnessOptions& options);

// True when the response has a validator (ETag or Last-Modified).
bool HasValidator(const Response& response);

}  // namespace webtier::cache
