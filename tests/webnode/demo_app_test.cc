// The built-in demo app: its routes, answers and validation, without a server.
#include "webtier/webnode/demo_app.h"

#include <gtest/gtest.h>

namespace webtier::webnode {
namespace {

using cache::FindHeader;
using cache::Request;
using cache::Response;
using cache::Route;
using cache::RouteTable;

TEST(DemoAppTest, CountsPrimes) {
  EXPECT_EQ(CountPrimes(0), 0);
  EXPECT_EQ(CountPrimes(1), 0);
  EXPECT_EQ(CountPrimes(2), 1);
  EXPECT_EQ(CountPrimes(3), 2);
  EXPECT_EQ(CountPrimes(10), 4);
  EXPECT_EQ(CountPrimes(100), 25);
  EXPECT_EQ(CountPrimes(1'000'000), 78'498);
}

TEST(DemoAppTest, RoutesAnswerAndValidate) {
  RouteTable t;
  AddDemoRoutes(&t, "node-a");
  const Route* primes = t.Match("/api/primes/100");
  ASSERT_NE(primes, nullptr);
  Response r = primes->handler(Request{}, "100");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("\"primes\":25"), std::string::npos);
  EXPECT_EQ(FindHeader(r.headers, "cache-control"), "public, max-age=60");
  EXPECT_EQ(primes->handler(Request{}, "abc").status, 400);
  EXPECT_EQ(primes->handler(Request{}, "").status, 400);
  EXPECT_EQ(primes->handler(Request{}, "100000001").status, 400);
  const Route* sleep = t.Match("/api/sleep/1");
  ASSERT_NE(sleep, nullptr);
  EXPECT_EQ(sleep->handler(Request{}, "1").status, 200);
  EXPECT_EQ(sleep->handler(Request{}, "10001").status, 400);
  const Route* time = t.Match("/api/time");
  ASSERT_NE(time, nullptr);
  EXPECT_FALSE(time->policy.cacheable);
  EXPECT_EQ(FindHeader(time->handler(Request{}, "").headers, "Cache-Control"), "no-store");
}

}  // namespace
}  // namespace webtier::webnode
