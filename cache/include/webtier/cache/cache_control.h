// Cache-Control parsing (RFC 9111 5.2), only the directives a shared cache
// acts on, and CDN-Cache-Control (RFC 9213), which is a Structured Fields
// dictionary with the same directives. Pure functions, thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace webtier::cache {

struct CacheControl {
  bool no_store = false;
  bool no_cache = false;        // unqualified: stored, revalidated before every use
  bool is_private = false;      // unqualified: never stored (shared cache)
  bool is_public = false;
  bool must_revalidate = false;
  bool proxy_revalidate = false;
  std::vector<std::string> no_cache_fields;  // no-cache="a, b": the listed fields are not stored
  std::vector<std::string> private_fields;   // private="a": the listed fields are not stored
  // Seconds, the first occurrence; a present but malformed value is 0 (stale at
  // once, RFC 9111 4.2.1); values beyond 2^31 are 2^31 (RFC 9111 1.2.2).
  std::optional<int64_t> max_age;
  std::optional<int64_t> s_maxage;                // wins over max_age
  std::optional<int64_t> stale_while_revalidate;  // seconds (RFC 5861)
  std::optional<int64_t> stale_if_error;          // seconds (RFC 5861)
  // Request directives (RFC 9111 5.2.1).
  std::optional<int64_t> max_stale;  // seconds; without a value: any staleness (2^31)
  std::optional<int64_t> min_fresh;  // seconds
  bool only_if_cached = false;
};

// Tolerant: unknown directives are ignored; names are case-insensitive;
// quoted values are accepted and a comma inside quotes does not split.
CacheControl ParseCacheControl(std::string_view value);

// CDN-Cache-Control: nullopt when the field is not a valid Structured Fields
// dictionary (RFC 8941) and must be ignored; a directive whose value has the
// wrong type (max-age="10") is ignored.
std::optional<CacheControl> ParseCdnCacheControl(std::string_view value);

// Delta-seconds (RFC 9111 1.2.2): digits only, saturating at 2^31.
std::optional<int64_t> ParseDeltaSeconds(std::string_view digits);

}  // namespace webtier::cache
