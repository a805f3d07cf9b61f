// The built-in demo app.
#include "webtier/webnode/demo_app.h"

#include <charconv>
#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

namespace webtier::webnode {
namespace {

using cache::ErrorResponse;
using cache::Request;
using cache::Response;
using cache::Route;

constexpr char kCacheable[] = "public, max-age=60";

bool ParseNumber(std::string_view text, int64_t max, int64_t* out) {
  if (text.empty()) return false;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && ptr == text.data() + text.size() && *out >= 0 && *out <= max;
}

Response Json(const nlohmann::json& body, const char* cache_control) {
  Response r;
  r.status = 200;
  r.headers.emplace_back("Content-Type", "application/json");
  r.headers.emplace_back("Cache-Control", cache_control);
  r.body = body.dump();
  return r;
}

int64_t UnixMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

int64_t CountPrimes(int64_t n) {
  if (n < 2) return 0;
  // composite[i] is for the odd number 2*i+1.
  std::vector<bool> composite(static_cast<size_t>(n / 2 + 1), false);
  int64_t count = 1;  // 2
  for (int64_t i = 3; i <= n; i += 2) {
    if (composite[static_cast<size_t>(i / 2)]) continue;
    ++count;
    for (int64_t j = i * i; j <= n; j += 2 * i) composite[static_cast<size_t>(j / 2)] = true;
  }
  return count;
}

void AddDemoRoutes(cache::RouteTable* routes, std::string node_id) {
  Route primes;
  primes.prefix = "/api/primes/";
  primes.label = "/api/primes";
  primes.handler = [node_id](const Request&, std::string_view rest) {
    int64_t n = 0;
    if (!ParseNumber(rest, kMaxPrimesN, &n)) return ErrorResponse(400, "n must be an integer in 0..100000000");
    auto start = std::chrono::steady_clock::now();
    int64_t count = CountPrimes(n);
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    return Json({{"n", n}, {"primes", count}, {"compute_ms", ms}, {"computed_by", node_id},
                 {"computed_at_ms", UnixMillis()}},
                kCacheable);
  };
  routes->Add(std::move(primes));

  Route sleep;
  sleep.prefix = "/api/sleep/";
  sleep.label = "/api/sleep";
  sleep.handler = [node_id](const Request& req, std::string_view rest) {
    int64_t ms = 0;
    if (!ParseNumber(rest, 10000, &ms)) return ErrorResponse(400, "ms must be an integer in 0..10000");
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return Json({{"slept_ms", ms}, {"query", req.query}, {"computed_by", node_id}, {"computed_at_ms", UnixMillis()}},
                kCacheable);
  };
  routes->Add(std::move(sleep));

  Route time;
  time.prefix = "/api/time";
  time.label = "/api/time";
  time.policy.cacheable = false;
  time.handler = [node_id](const Request&, std::string_view) {
    return Json({{"unix_ms", UnixMillis()}, {"server", node_id}}, "no-store");
  };
  routes->Add(std::move(time));
}

}  // namespace webtier::webnode
