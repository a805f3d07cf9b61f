// The HTTP request and response as the cache, the routes and the origin see
// them: plain values, independent of the HTTP server and libcurl, so every
// piece can be tested without a server. The webnode's content services take
// the same Request.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

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

// Case-insensitive ASCII comparison of header names and tokens.
bool EqualsIgnoreCase(std::string_view a, std::string_view b);

// `s` without leading and trailing spaces and tabs (optional whitespace, RFC 9110 5.6.3).
std::string_view TrimOws(std::string_view s);

// The first value of header `name`, or empty when absent.
std::string_view FindHeader(const Headers& headers, std::string_view name);
bool HasHeader(const Headers& headers, std::string_view name);

// Hop-by-hop headers (RFC 9110 7.6.1) and the framing headers the HTTP server
// and libcurl write themselves: never forwarded in either direction.
bool IsHopByHop(std::string_view name);

// A small JSON error body: {"error":"<message>"}; `message` must not need escaping.
Response ErrorResponse(int status, std::string_view message);

}  // namespace webtier::cache
