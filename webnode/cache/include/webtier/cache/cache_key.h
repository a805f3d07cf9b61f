// Cache keys: the request path plus its normalized query (and the Host when
// configured), under a Redis namespace named by the record format version: two
// webnode releases with different formats, side by side during a rolling
// upgrade, each use their own entries instead of overwriting each other's.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "webtier/cache/record.h"

namespace webtier::cache {

// Drops empty "&&" segments and sorts the parameters, so "b=2&a=1" and
// "a=1&b=2&" name the same entry. Values are kept byte for byte (a percent-
// encoded and a plain spelling of one value are different keys).
std::string NormalizeQuery(std::string_view query);

// "webtier:v<version>:" [host "|"] path ["?" normalized query]. `host` empty = not keyed on Host.
std::string CacheKey(std::string_view path, std::string_view query, std::string_view host = {},
                     uint8_t version = kRecordVersion);

// The Redis set of the URL keys whose responses listed `tag` in Surrogate-Key.
std::string TagKey(std::string_view tag);

// The Redis key of the fill lock for `cache_key`.
std::string LockKey(std::string_view cache_key);

}  // namespace webtier::cache
