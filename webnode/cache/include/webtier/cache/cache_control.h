// Cache-Control parsing (RFC 9111 5.2), only the directives a shared cache acts on.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace webtier::cache {

struct CacheControl {
  bool no_store = false;
  bool no_cache = false;  // treated like no-store: this cache does not revalidate
  bool is_private = false;
  bool is_public = false;
  std::optional<int64_t> max_age;                 // seconds
  std::optional<int64_t> s_maxage;                // seconds, wins over max_age
  std::optional<int64_t> stale_while_revalidate;  // seconds (RFC 5861)
  std::optional<int64_t> stale_if_error;          // seconds (RFC 5861)
};

// Tolerant: unknown directives and malformed numbers are ignored; directive
// names are case-insensitive; quoted values are accepted.
CacheControl ParseCacheControl(std::string_view value);

}  // namespace webtier::cache
