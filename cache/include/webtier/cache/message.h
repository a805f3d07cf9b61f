// The HTTP request and response as the cache, the routes and the origin see
// them: plain values, independent of the HTTP server and libcurl, so every
// piece can be tested without a server. The webnode's content services take
// the same Request.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "webtier/common/http_syntax.h"

namespace webtier::cache {

// Header names keep the case they arrived with; lookups ignore case.
using Headers = std::vector<std::pair<std::string, std::string>>;

struct Request {
  std::string method = "GET";  // upper case
  std::string path;            // "/api/primes/100", no query
  std::string query;           // raw query without '?', may be empty
  std::string host;            // the Host header, normalised (request_target.h); may be empty
  Headers headers;             // request headers (Cookie and Authorization included)
  std::string body;
  std::string scheme = "http";  // "http" or "https" (X-Forwarded-Proto as the balancer sets it)
};

struct Response {
  int status = 200;
  Headers headers;  // end-to-end headers, Content-Type included
  std::string body;
};

// Case-insensitive ASCII comparison and OWS trimming, as the balancer does
// them (common/include/webtier/common/http_syntax.h).
using http_syntax::EqualsIgnoreCase;
using http_syntax::TrimOws;

// The first value of header `name`, or empty when absent.
std::string_view FindHeader(const Headers& headers, std::string_view name);
bool HasHeader(const Headers& headers, std::string_view name);

// The hop-by-hop fields both programs drop (http_syntax::kHopByHopFields)
// and Content-Length, which the HTTP server and libcurl write themselves:
// never forwarded in either direction.
bool IsHopByHopOrLength(std::string_view name);

// A small JSON error body: {"error":"<message>"}; `message` must not need escaping.
Response ErrorResponse(int status, std::string_view message);

}  // namespace webtier::cache
