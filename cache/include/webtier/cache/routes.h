// The extension point: routes served by C++ code inside the webnode, each with
// its own cache policy. The demo app (/api/primes, /api/sleep, /api/time) is
// built this way; a user adds a route like this:
//
//   cache::Route route;
//   route.prefix = "/api/report/";              // matches /api/report/<anything>
//   route.label = "/api/report";                // metric label, keep it low-cardinality
//   route.policy.ttl = std::chrono::seconds(300);  // overrides the response's max-age
//   route.handler = [](const cache::Request& req, std::string_view rest) {
//     return cache::Response{200, {{"Content-Type", "text/plain"},
//                                  {"Cache-Control", "public, max-age=300"}},
//                            "report for " + std::string(rest)};
//   };
//   auto content = webnode::MakeCachedContent(config, registry, redis_master, {std::move(route)});
//
// Handlers run on worker threads (never an HTTP server I/O thread), may block
// and must be thread-safe. A handler that throws answers 500 (not cached).
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "webtier/cache/message.h"

namespace webtier::cache {

struct CachePolicy {
  bool cacheable = true;                    // false: never looked up nor stored (no X-Cache)
  bool cache_with_credentials = false;      // true: also cache requests carrying Authorization/Cookie
  std::optional<std::chrono::seconds> ttl;  // set: wins over s-maxage/max-age and --cache-ttl
};

// `rest` is the part of the path after `prefix`.
using RouteHandler = std::function<Response(const Request& request, std::string_view rest)>;

struct Route {
  std::string prefix;  // "/api/primes/" matches below it; without a trailing '/' the path must be equal
  std::string label;   // metric label (webnode_http_requests_total{route})
  CachePolicy policy;
  RouteHandler handler;
};

// Filled before serving, then read-only: Match() is thread-safe, Add() is not.
class RouteTable {
 public:
  void Add(Route route);
  // The matching route with the longest prefix, or nullptr.
  const Route* Match(std::string_view path) const;
  bool empty() const { return routes_.empty(); }

 private:
  std::vector<Route> routes_;
};

}  // namespace webtier::cache
