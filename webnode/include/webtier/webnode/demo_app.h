// The built-in demo application: real CPU work, a slow route and an
// uncacheable one, registered as ordinary cache routes. Stateless, so
// thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "webtier/cache/routes.h"

namespace webtier::webnode {

// Adds GET /api/primes/{n} (n <= kMaxPrimesN), /api/sleep/{ms} (ms <= 10000),
// both `Cache-Control: public, max-age=60`, and /api/time (`no-store`, never
// cached). Bodies name `node_id` as the node that computed them.
void AddDemoRoutes(cache::RouteTable* routes, std::string node_id);

inline constexpr int64_t kMaxPrimesN = 100'000'000;

// Number of primes <= n (sieve of Eratosthenes, odd numbers only).
int64_t CountPrimes(int64_t n);

}  // namespace webtier::webnode
