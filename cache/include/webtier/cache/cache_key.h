// Cache keys: the site (scheme and normalised Host, see request_target.h) the
// request was made to, the request path and its normalized query, under a Redis namespace named by the record format version: two
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

// "scheme://host": the part of the key that names the site. `host` is empty
// when the node sends one fixed Host to its origin (--origin-host).
std::string SiteOf(std::string_view scheme, std::string_view host);

// "webtier:v<version>:" site path ["?" normalized query]. `site` empty is
// the layout of releases that keyed on neither scheme nor Host (a purge
// still deletes those keys during a rolling upgrade).
std::string CacheKey(std::string_view path, std::string_view query, std::string_view site = {},
                     uint8_t version = kRecordVersion);

// The Redis set of every key stored for one path and query, whatever the
// site: how a purge by path finds the entries of every Host and scheme.
std::string UrlIndexKey(std::string_view path, std::string_view query);

// The Redis set of the URL keys whose responses listed `tag` in Surrogate-Key.
std::string TagKey(std::string_view tag);

// The Redis key of the fill lock for `cache_key`.
std::string LockKey(std::string_view cache_key);

// The purge sequence (Store::MarkPurged), and the purge mark of an index
// (UrlIndexKey or TagKey): a fill that began before the mark was set must
// not write under that URL or tag.
inline constexpr char kPurgeSeqKey[] = "webtier:purge-seq";
std::string PurgeMarkKey(std::string_view index_key);

}  // namespace webtier::cache
