// The edge cache (webtier/balancer/edge/edge_cache.h) and HTTP: which
// requests it may answer or learn from, what of a member's answer it keeps,
// and the head of an answer served from memory. The rules are the shared
// cache's (webtier::cache: freshness, Vary, conditionals, key normalisation);
// where the edge is unsure it forwards, and the tier answers as it always did.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "webtier/balancer/edge/edge_cache.h"
#include "webtier/balancer/http/h2_rules.h"

namespace webtier::balancer::edge {

namespace http = boost::beast::http;

// What the edge makes of one request.
struct EdgeRequest {
  bool lookup = false;  // may be answered from memory
  bool store = false;   // a GET whose answer may be kept
  bool unsafe = false;  // not a safe method: a success invalidates its URL (RFC 9111 4.4)
  bool head = false;    // HEAD: answered from the GET's object, without the body
  std::string site;     // "scheme://normalised host"
  std::string url;      // path ["?" normalised query]
  std::optional<int64_t> max_age_s;  // the client's Cache-Control max-age
  std::optional<int64_t> min_fresh_s;  // and min-fresh
};

// Looked up: GET or HEAD, origin-form target, a valid Host, no credentials
// (Authorization, Cookie), no body, no Range or precondition other than
// If-None-Match / If-Modified-Since (answered here), no Upgrade, and no
// request directive that asks the tier (no-cache, no-store, Pragma:
// no-cache). Stored: the same GETs, and those with no-cache (the tier's
// answer to them is fresh). `tls`: the scheme is https.
EdgeRequest ClassifyRequest(const http::request<http::string_body>& req, bool tls);

// The request's selecting fields for `vary` (cache::SelectingFields).
std::string SelectingFields(const http::request<http::string_body>& req, const cache::Vary& vary);

// Whether the client's max-age / min-fresh accept `object` now.
bool Acceptable(const EdgeRequest& request, const EdgeObject& object, int64_t now_ms);

// The object to keep for a member's answer `head` to `request`, its body still
// to come (Content-Length `length`); null when the edge may not keep it: not
// storable by a shared cache or not fresh (cache::Assess), Set-Cookie,
// Vary: *, no-cache, private or no-cache naming fields, no Content-Length,
// over `max_object_bytes`. `request_ms` / `response_ms`: Unix ms when the
// request left and the head came.
std::shared_ptr<EdgeObject> ObjectFor(const http::response_header<>& head, std::optional<uint64_t> length,
                                      const EdgeRequest& request, const http::request<http::string_body>& req,
                                      int64_t request_ms, int64_t response_ms, uint64_t max_object_bytes);

// The URLs an unsafe request's successful answer invalidates besides its
// own: Location and Content-Location naming a path of the same site.
std::vector<std::string> InvalidatedBy(const http::response_header<>& head, const EdgeRequest& request);

// The answer from memory, for an HTTP/1.x client: the head in `out` (the
// body, when it is sent, is object.response.body). 304 when the client's
// If-None-Match / If-Modified-Since say it has the object. Returns the status.
// `*with_body`: the body follows the head.
int SerializeHit(const EdgeObject& object, const http::request<http::string_body>& req, int64_t now_ms,
                 bool keep_alive, std::string_view request_id, std::string& out, bool* with_body);

// The same answer's HTTP/2 fields (lower-case names) in `fields`; `storage`
// holds the values made for this answer. Returns the status.
int HitFields(const EdgeObject& object, const http::request<http::string_body>& req, int64_t now_ms,
              std::string_view request_id, std::vector<H2Field>& fields, std::string& storage, bool* with_body);

// The Cache-Status member the edge adds to an answer it forwarded.
inline constexpr std::string_view kForwardedMiss = "webtier-edge; fwd=uri-miss";
inline constexpr std::string_view kForwardedStale = "webtier-edge; fwd=stale";

// "path[?normalised query]" of an origin-form target (the edge's URL);
// empty when `target` is not one.
std::string UrlOfTarget(std::string_view target);

// The invalidation channel's message (a shared-cache key, cache_key.h:
// "webtier:v<N>:" [scheme "://" host] path ["?" query]) as the URL the edge
// erases; empty when it is not such a key.
std::string UrlOfCacheKey(std::string_view key);

}  // namespace webtier::balancer::edge
