// ResponseCache against an in-memory store, a fake clock and in-process routes:
// every cache rule without Redis or a server.
#include "webtier/cache/response_cache.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <set>
#include <thread>
#include <tuple>

#include "fakes.h"
#include "webtier/cache/cache_key.h"
#include "webtier/cache/http_date.h"

namespace webtier::cache {
namespace {

using namespace std::chrono_literals;
using testing::FakeClock;
using testing::MemoryStore;

// The site part of the keys of this suite's requests: plain http, no Host.
constexpr char kSite[] = "http://";

bool Eventually(const std::function<bool()>& cond, std::chrono::milliseconds timeout = 5s) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(2ms);
  }
  return cond();
}

class ResponseCacheTest : public ::testing::Test {
 protected:
  ResponseCacheTest() : metrics_(registry_), store_(&clock_), breaker_(BreakerOptions{3, 2000ms}, &clock_) {
    options_.default_ttl = 10s;
    options_.ttl_jitter = 0;
    options_.stale_if_error = 60s;
    options_.lock_ttl = 2000ms;
    options_.lock_poll = 2ms;
    options_.node_id = "test";

    Route r;
    r.prefix = "/r/";
    r.label = "/r";
    r.handler = [this](const Request& req, std::string_view rest) {
      int n = ++fetches_;
      last_method_ = req.method;
      std::lock_guard<std::mutex> lock(mu_);
      if (throw_) throw std::runtime_error("boom");
      Response out;
      out.status = status_;
      out.headers = {{"Content-Type", "text/plain"}, {"Cache-Control", cache_control_}};
      for (const auto& h : extra_headers_) out.headers.push_back(h);
      out.body = "r:" + std::string(rest) + "?" + req.query + "#" + std::to_string(n);
      return out;
    };
    routes_.Add(r);

    Route slow = r;
    slow.prefix = "/slow/";
    slow.label = "/slow";
    slow.handler = [this](const Request&, std::string_view rest) {
      ++fetches_;
      std::this_thread::sleep_for(100ms);
      return Response{200, {{"Cache-Control", "max-age=10"}}, "slow:" + std::string(rest)};
    };
    routes_.Add(slow);

    Route personal = r;  // slow, and for one client only
    personal.prefix = "/personal/";
    personal.label = "/personal";
    personal.handler = [this](const Request&, std::string_view rest) {
      int n = ++fetches_;
      std::this_thread::sleep_for(100ms);
      std::lock_guard<std::mutex> lock(mu_);
      Response out{200, {{"Cache-Control", cache_control_}}, "personal:" + std::string(rest) + "#" + std::to_string(n)};
      for (const auto& h : extra_headers_) out.headers.push_back(h);
      return out;
    };
    routes_.Add(personal);

    // Validators: ETag "e<version>", fresh 1 s; a matching If-None-Match gets a
    // 304 that makes it fresh for 100 s. Records the headers it was sent.
    Route validating = r;
    validating.prefix = "/v/";
    validating.label = "/v";
    validating.handler = [this](const Request& req, std::string_view) {
      ++fetches_;
      std::lock_guard<std::mutex> lock(mu_);
      seen_.push_back(req.headers);
      const std::string etag = "\"e" + std::to_string(version_) + "\"";
      if (FindHeader(req.headers, "If-None-Match") == etag) {
        return Response{304, {{"ETag", etag}, {"Cache-Control", "max-age=100"}, {"X-Updated", "yes"}}, ""};
      }
      return Response{200, {{"ETag", etag}, {"Cache-Control", "max-age=1"}, {"X-Updated", "no"}},
                      "v" + std::to_string(version_)};
    };
    routes_.Add(validating);

    // Slow, varies on X-Lang (one line each: Vary: X-Lang / Vary: X-Region).
    Route varying = r;
    varying.prefix = "/vary/";
    varying.label = "/vary";
    varying.handler = [this](const Request& req, std::string_view) {
      int n = ++fetches_;
      std::this_thread::sleep_for(50ms);
      std::lock_guard<std::mutex> lock(mu_);
      seen_.push_back(req.headers);
      return Response{200, {{"Cache-Control", "max-age=60"}, {"Vary", "X-Lang"}, {"Vary", "X-Region"}, {"ETag", "\"t\""}},
                      std::string(FindHeader(req.headers, "X-Lang")) + "/" +
                          std::string(FindHeader(req.headers, "X-Region")) + "#" + std::to_string(n)};
    };
    routes_.Add(varying);

    // Holds a GET until the test opens the gate (Surrogate-Key: g); other methods pass.
    Route gated = r;
    gated.prefix = "/gate/";
    gated.label = "/gate";
    gated.handler = [this](const Request& req, std::string_view rest) {
      int n = ++fetches_;
      if (req.method == "GET") {
        std::unique_lock<std::mutex> lock(gate_mu_);
        ++at_gate_;
        gate_cv_.wait_for(lock, 5s, [this] { return gate_open_; });
        --at_gate_;
      }
      return Response{200, {{"Cache-Control", "max-age=60"}, {"Surrogate-Key", "g"}},
                      "gate:" + std::string(rest) + "#" + std::to_string(n)};
    };
    routes_.Add(gated);

    Route never = r;
    never.prefix = "/never";
    never.label = "/never";
    never.policy.cacheable = false;
    routes_.Add(never);

    Route auth = r;
    auth.prefix = "/auth/";
    auth.label = "/auth";
    auth.policy.cache_with_credentials = true;
    routes_.Add(auth);

    Route pinned = r;
    pinned.prefix = "/pinned/";
    pinned.label = "/pinned";
    pinned.policy.ttl = 100s;
    routes_.Add(pinned);
  }

  // Tests call it from several threads at once: the first call makes the cache.
  ResponseCache& Cache() {
    std::lock_guard<std::mutex> lock(caches_mu_);
    if (caches_.empty()) Make(&store_);
    return *caches_.front();
  }
  HotCache* Hot(std::chrono::milliseconds window) {
    hots_.push_back(std::make_unique<HotCache>(100, window, &clock_));
    return hots_.back().get();
  }
  // Owned by the fixture, so it outlives background fills on workers_.
  ResponseCache* Make(Store* store, CircuitBreaker* breaker = nullptr, HotCache* hot = nullptr) {
    ResponseCache::Parts parts;
    parts.routes = &routes_;
    parts.store = store;
    parts.hot = hot;
    parts.breaker = breaker ? breaker : &breaker_;
    parts.workers = &workers_;
    parts.metrics = &metrics_;
    parts.clock = &clock_;
    caches_.push_back(std::make_unique<ResponseCache>(options_, parts));
    return caches_.back().get();
  }

  static Outcome Get(ResponseCache& cache, const std::string& path, const std::string& query = "",
                     const std::string& method = "GET", Headers headers = {}) {
    Request req;
    req.method = method;
    req.path = path;
    req.query = query;
    req.headers = std::move(headers);
    auto promise = std::make_shared<std::promise<Outcome>>();
    auto future = promise->get_future();
    cache.Serve(std::move(req), [promise](Outcome o) { promise->set_value(std::move(o)); });
    EXPECT_EQ(future.wait_for(10s), std::future_status::ready);
    return future.get();
  }
  Outcome Get(const std::string& path, const std::string& query = "", const std::string& method = "GET",
              Headers headers = {}) {
    return Get(Cache(), path, query, method, std::move(headers));
  }

  // The fixture's routes, store, breaker, metrics and clock, with `pool` as
  // the workers (no hot copy).
  ResponseCache::Parts PartsOn(WorkerPool& pool) {
    ResponseCache::Parts parts;
    parts.routes = &routes_;
    parts.store = &store_;
    parts.breaker = &breaker_;
    parts.workers = &pool;
    parts.metrics = &metrics_;
    parts.clock = &clock_;
    return parts;
  }

  void SetGate(bool open) {
    {
      std::lock_guard<std::mutex> lock(gate_mu_);
      gate_open_ = open;
    }
    gate_cv_.notify_all();
  }
  int AtGate() {
    std::lock_guard<std::mutex> lock(gate_mu_);
    return at_gate_;
  }

  void SetCacheControl(std::string cc) {
    std::lock_guard<std::mutex> lock(mu_);
    cache_control_ = std::move(cc);
  }
  void SetStatus(int status) {
    std::lock_guard<std::mutex> lock(mu_);
    status_ = status;
  }

  CacheOptions options_;
  prometheus::Registry registry_;
  CacheMetrics metrics_;
  FakeClock clock_;
  MemoryStore store_;
  CircuitBreaker breaker_;
  RouteTable routes_;
  std::atomic<int> fetches_{0};
  std::string last_method_;
  std::mutex mu_;
  std::string cache_control_ = "public, max-age=10, stale-while-revalidate=5";
  int version_ = 1;
  std::vector<Headers> seen_;  // request headers the /v/ and /vary/ routes were sent
  int status_ = 200;
  bool throw_ = false;
  Headers extra_headers_;
  std::mutex gate_mu_;  // the /gate/ route's
  std::condition_variable gate_cv_;
  bool gate_open_ = true;
  int at_gate_ = 0;
  CircuitBreaker breaker_b_{BreakerOptions{}, &clock_};  // a second node's
  std::vector<std::unique_ptr<HotCache>> hots_;
  std::mutex caches_mu_;  // serializes Cache()'s first call
  std::vector<std::unique_ptr<ResponseCache>> caches_;
  WorkerPool workers_{"test", 32};  // last: destroyed first, while the caches live
};

TEST_F(ResponseCacheTest, MissThenHitWithTheSameBody) {
  Outcome miss = Get("/r/1");
  EXPECT_EQ(miss.cache, CacheStatus::kMiss);
  EXPECT_EQ(miss.response.status, 200);
  EXPECT_FALSE(miss.age_seconds.has_value());
  EXPECT_EQ(miss.route, "/r");
  clock_.Advance(3500ms);
  Outcome hit = Get("/r/1");
  EXPECT_EQ(hit.cache, CacheStatus::kHit);
  EXPECT_EQ(hit.response.body, miss.response.body);
  EXPECT_EQ(FindHeader(hit.response.headers, "Content-Type"), "text/plain");
  EXPECT_EQ(hit.age_seconds, 3);
  EXPECT_EQ(fetches_.load(), 1);
  EXPECT_EQ(metrics_.hit.Value(), 1);
  EXPECT_EQ(metrics_.miss.Value(), 1);
  EXPECT_EQ(metrics_.origin_requests.Value(), 1);
  EXPECT_EQ(metrics_.stores.Value(), 1);
}

// What a networked store makes each kind of request pay: a miss looks up and
// takes the fill lock in one round trip, then stores the entry, its URL and
// tag indexes and the release of the lock in one more; a hit reads once.
TEST_F(ResponseCacheTest, AMissCostsTwoStoreRoundTripsAndAHitOne) {
  extra_headers_ = {{"Surrogate-Key", "a b"}};
  const int before = store_.round_trips();
  Outcome miss = Get("/r/trips");
  ASSERT_EQ(miss.cache, CacheStatus::kMiss);
  EXPECT_TRUE(miss.stored);
  EXPECT_EQ(store_.round_trips() - before, 2);
  const std::string key = CacheKey("/r/trips", "", kSite);
  EXPECT_FALSE(store_.Contains(LockKey(key)));  // released with the store
  EXPECT_EQ(metrics_.stores.Value(), 1);

  const int after_miss = store_.round_trips();
  EXPECT_EQ(Get("/r/trips").cache, CacheStatus::kHit);
  EXPECT_EQ(store_.round_trips() - after_miss, 1);

  // The indexes went in with the entry: a purge by tag reaches it.
  size_t purged = 0;
  ASSERT_TRUE(Cache().PurgeTag("b", &purged).ok());
  EXPECT_EQ(purged, 1u);
  EXPECT_EQ(Get("/r/trips").cache, CacheStatus::kMiss);
}

TEST_F(ResponseCacheTest, HeadIsAnsweredFromTheGetEntry) {
  EXPECT_EQ(Get("/r/h", "", "HEAD").cache, CacheStatus::kMiss);
  EXPECT_EQ(last_method_, "GET");  // the entry is filled with a GET
  Outcome hit = Get("/r/h");
  EXPECT_EQ(hit.cache, CacheStatus::kHit);
  EXPECT_EQ(Get("/r/h", "", "HEAD").cache, CacheStatus::kHit);
  EXPECT_EQ(fetches_.load(), 1);
}

TEST_F(ResponseCacheTest, TheNormalizedQueryIsPartOfTheKey) {
  EXPECT_EQ(Get("/r/q", "b=2&a=1").cache, CacheStatus::kMiss);
  EXPECT_EQ(Get("/r/q", "a=1&b=2").cache, CacheStatus::kHit);
  EXPECT_EQ(Get("/r/q", "a=2").cache, CacheStatus::kMiss);
  EXPECT_EQ(Get("/r/q").cache, CacheStatus::kMiss);
  EXPECT_EQ(fetches_.load(), 3);
}

TEST_F(ResponseCacheTest, EntriesExpireAfterTheirTtl) {
  EXPECT_EQ(Get("/r/ttl").cache, CacheStatus::kMiss);
  clock_.Advance(9999ms);
  EXPECT_EQ(Get("/r/ttl").cache, CacheStatus::kHit);
  clock_.Advance(10s + 5s + 60s);  // past ttl and both grace windows
  EXPECT_EQ(Get("/r/ttl").cache, CacheStatus::kMiss);
  EXPECT_EQ(fetches_.load(), 2);
}

TEST_F(ResponseCacheTest, TtlComesFromSMaxAgeThenMaxAgeThenTheDefault) {
  SetCacheControl("max-age=1, s-maxage=30");
  Get("/r/s");
  clock_.Advance(20s);
  EXPECT_EQ(Get("/r/s").cache, CacheStatus::kHit);

  // No explicit freshness: heuristic freshness from Last-Modified (10% of its
  // age), never more than --cache-ttl (10 s here); without Last-Modified none.
  SetCacheControl("public");
  extra_headers_ = {{"Last-Modified", FormatHttpDate(clock_.UnixMillis() / 1000 - 86400)}};
  Get("/r/d");
  clock_.Advance(9s);
  EXPECT_EQ(Get("/r/d").cache, CacheStatus::kHit);
  clock_.Advance(2s);
  EXPECT_EQ(Get("/r/d").cache, CacheStatus::kMiss);
  extra_headers_ = {{"Last-Modified", FormatHttpDate(clock_.UnixMillis() / 1000 - 50)}};  // 10% = 5 s
  Get("/r/d5");
  clock_.Advance(6s);
  EXPECT_EQ(Get("/r/d5").cache, CacheStatus::kMiss);
  extra_headers_ = {};
  Get("/r/none");
  EXPECT_EQ(Get("/r/none").cache, CacheStatus::kMiss);
  // Explicit freshness wins over the heuristic, also when it is stale at once.
  for (const char* cc : {"max-age=-3600", "max-age=0"}) {
    SetCacheControl(cc);
    std::string path = std::string("/r/explicit") + cc;
    Get(path);
    EXPECT_EQ(Get(path).cache, CacheStatus::kMiss) << cc;
  }
  SetCacheControl("public");
  extra_headers_ = {{"Expires", FormatHttpDate(clock_.UnixMillis() / 1000 - 10)},
                    {"Last-Modified", FormatHttpDate(clock_.UnixMillis() / 1000 - 86400)}};
  Get("/r/expired");
  EXPECT_EQ(Get("/r/expired").cache, CacheStatus::kMiss);
  extra_headers_ = {};

  SetCacheControl("max-age=1");  // the route's policy wins
  Get("/pinned/x");
  clock_.Advance(90s);
  EXPECT_EQ(Get("/pinned/x").cache, CacheStatus::kHit);
}

TEST_F(ResponseCacheTest, TtlJitterOnlyShortens) {
  options_.ttl_jitter = 0.1;
  auto cache = Make(&store_);
  SetCacheControl("max-age=100");
  for (int i = 0; i < 20; ++i) {
    std::string path = "/r/j" + std::to_string(i);
    Get(*cache, path);
    std::string bytes;
    ASSERT_TRUE(store_.Get(CacheKey(path, "", kSite), &bytes).ok());
    Record rec;
    ASSERT_TRUE(DecodeRecord(bytes, &rec).ok());
    EXPECT_GE(rec.ttl_ms, 90'000);
    EXPECT_LE(rec.ttl_ms, 100'000);
  }
}

TEST_F(ResponseCacheTest, UnstorableResponsesAreNeverCached) {
  for (const char* cc : {"no-store", "private, max-age=60", "no-cache", "max-age=0"}) {
    SetCacheControl(cc);
    std::string path = std::string("/r/") + cc;
    EXPECT_EQ(Get(path).cache, CacheStatus::kMiss) << cc;
    EXPECT_EQ(Get(path).cache, CacheStatus::kMiss) << cc;
  }
  EXPECT_EQ(fetches_.load(), 8);
  SetCacheControl("max-age=60");
  extra_headers_ = {{"Set-Cookie", "session=1"}};
  Get("/r/cookie");
  EXPECT_EQ(Get("/r/cookie").cache, CacheStatus::kMiss);
  extra_headers_ = {{"Vary", "*"}};
  Get("/r/vary");
  EXPECT_EQ(Get("/r/vary").cache, CacheStatus::kMiss);
  extra_headers_ = {};
  SetStatus(500);
  SetCacheControl("public");  // an error without explicit freshness
  Get("/r/err");
  EXPECT_EQ(Get("/r/err").cache, CacheStatus::kMiss);
  EXPECT_EQ(metrics_.stores.Value(), 0);
  SetCacheControl("max-age=60");  // the origin says to keep it: RFC 9111 3 allows it
  Get("/r/err60");
  EXPECT_EQ(Get("/r/err60").cache, CacheStatus::kHit);
}

TEST_F(ResponseCacheTest, NotEligibleRequestsSkipTheCache) {
  EXPECT_EQ(Get("/never").cache, CacheStatus::kNone);
  EXPECT_EQ(Get("/never").cache, CacheStatus::kNone);
  EXPECT_EQ(Get("/r/p", "", "POST").cache, CacheStatus::kNone);
  EXPECT_EQ(Get("/r/a", "", "GET", {{"Authorization", "Bearer x"}}).cache, CacheStatus::kNone);
  EXPECT_EQ(Get("/r/a", "", "GET", {{"Cookie", "a=b"}}).cache, CacheStatus::kNone);
  EXPECT_EQ(fetches_.load(), 5);
  // Only the POST's invalidation of its URL: the purge mark that fences off
  // fills under way, then DEL + PUBLISH for the key of this release and of
  // the ones before and after it (a rolling upgrade).
  EXPECT_EQ(store_.calls(), 7);
  // ...unless the route says so.
  EXPECT_EQ(Get("/auth/a", "", "GET", {{"Authorization", "Bearer x"}}).cache, CacheStatus::kMiss);
  EXPECT_EQ(Get("/auth/a", "", "GET", {{"Authorization", "Bearer x"}}).cache, CacheStatus::kHit);
}

TEST_F(ResponseCacheTest, UnmatchedPathsWithoutAnOriginAre404) {
  Outcome o = Get("/nothing/here");
  EXPECT_EQ(o.response.status, 404);
  EXPECT_EQ(o.cache, CacheStatus::kNone);
  EXPECT_EQ(o.route, "unmatched");
}

TEST_F(ResponseCacheTest, AThrowingHandlerAnswers500AndIsNotCached) {
  throw_ = true;
  EXPECT_EQ(Get("/r/t").response.status, 500);
  throw_ = false;
  EXPECT_EQ(Get("/r/t").response.status, 200);
}

TEST_F(ResponseCacheTest, CacheOffSendsEverythingToTheOrigin) {
  auto cache = Make(nullptr);
  EXPECT_EQ(Get(*cache, "/r/off").cache, CacheStatus::kNone);
  EXPECT_EQ(Get(*cache, "/r/off").cache, CacheStatus::kNone);
  EXPECT_EQ(fetches_.load(), 2);
}

TEST_F(ResponseCacheTest, ACorruptRecordIsAMissCountedAndOverwritten) {
  store_.Raw(CacheKey("/r/c", "", kSite), "definitely not a record");
  Outcome miss = Get("/r/c");
  EXPECT_EQ(miss.cache, CacheStatus::kMiss);
  EXPECT_EQ(miss.response.status, 200);
  EXPECT_EQ(metrics_.corrupt_records.Value(), 1);
  Outcome hit = Get("/r/c");
  EXPECT_EQ(hit.cache, CacheStatus::kHit);
  EXPECT_EQ(hit.response.body, miss.response.body);
}

TEST_F(ResponseCacheTest, ARecordOfTheFormerFormatIsAPlainMissAndIsReplaced) {
  Record old;
  old.response = Response{200, {{"Content-Type", "text/plain"}}, "old"};
  old.stored_at_ms = clock_.UnixMillis();
  old.ttl_ms = 60'000;
  std::string bytes = EncodeRecord(old);
  bytes[3] = 1;  // format version 1
  store_.Raw(CacheKey("/r/old", "", kSite), bytes);
  Outcome miss = Get("/r/old");
  EXPECT_EQ(miss.cache, CacheStatus::kMiss);
  EXPECT_NE(miss.response.body, "old");
  EXPECT_EQ(metrics_.corrupt_records.Value(), 0);
  EXPECT_EQ(Get("/r/old").cache, CacheStatus::kHit);
}

TEST_F(ResponseCacheTest, StaleWhileRevalidateServesStaleAndRefreshesOnce) {
  Outcome first = Get("/r/swr");
  clock_.Advance(11s);  // ttl 10 s, swr 5 s
  Outcome stale = Get("/r/swr");
  EXPECT_EQ(stale.cache, CacheStatus::kStale);
  EXPECT_EQ(stale.response.body, first.response.body);
  EXPECT_EQ(stale.age_seconds, 11);
  ASSERT_TRUE(Eventually([&] { return fetches_.load() == 2 && metrics_.stores.Value() == 2; }));
  Outcome fresh = Get("/r/swr");
  EXPECT_EQ(fresh.cache, CacheStatus::kHit);
  EXPECT_NE(fresh.response.body, first.response.body);
  EXPECT_EQ(metrics_.revalidations.Value(), 1);
}

TEST_F(ResponseCacheTest, AFailedRevalidationKeepsTheStaleEntry) {
  Outcome first = Get("/r/swr-fail");
  clock_.Advance(11s);
  SetStatus(503);
  EXPECT_EQ(Get("/r/swr-fail").cache, CacheStatus::kStale);
  ASSERT_TRUE(Eventually([&] { return fetches_.load() == 2 && metrics_.origin_errors.Value() == 1; }));
  Outcome again = Get("/r/swr-fail");
  EXPECT_EQ(again.cache, CacheStatus::kStale);
  EXPECT_EQ(again.response.body, first.response.body);
}

TEST_F(ResponseCacheTest, StaleIfErrorServesTheOldEntryWhenTheOriginFails) {
  Outcome first = Get("/r/sie");
  clock_.Advance(10s + 5s + 1s);  // past swr, inside stale-if-error
  SetStatus(502);
  Outcome stale = Get("/r/sie");
  EXPECT_EQ(stale.cache, CacheStatus::kStale);
  EXPECT_EQ(stale.response.status, 200);
  EXPECT_EQ(stale.response.body, first.response.body);
  EXPECT_EQ(metrics_.stale_if_error.Value(), 1);
  SetStatus(200);
  Outcome fresh = Get("/r/sie");  // the origin is back: a normal miss refreshes it
  EXPECT_EQ(fresh.cache, CacheStatus::kMiss);
  EXPECT_EQ(Get("/r/sie").cache, CacheStatus::kHit);
  // Without a stale entry, the error goes through (and is not stored).
  SetStatus(502);
  EXPECT_EQ(Get("/r/sie-none").response.status, 502);
}

TEST_F(ResponseCacheTest, AStoreOutageBypassesAndTheBreakerStopsCallingIt) {
  EXPECT_EQ(Get("/r/b").cache, CacheStatus::kMiss);
  store_.SetDown(true);
  for (int i = 0; i < 3; ++i) {
    Outcome o = Get("/r/b");
    EXPECT_EQ(o.cache, CacheStatus::kBypass);
    EXPECT_EQ(o.response.status, 200);
  }
  EXPECT_EQ(breaker_.state(), CircuitBreaker::State::kOpen);
  EXPECT_EQ(metrics_.breaker_open.Value(), 1);
  const int calls = store_.calls();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Get("/r/b").cache, CacheStatus::kBypass);
  EXPECT_EQ(store_.calls(), calls);  // skipped during the cool-down
  EXPECT_EQ(metrics_.bypass.Value(), 8);
  EXPECT_EQ(metrics_.redis_errors.Value(), 3);

  store_.SetDown(false);
  clock_.Advance(2s);
  EXPECT_EQ(Get("/r/b").cache, CacheStatus::kHit);  // the probe succeeds: closed again
  EXPECT_EQ(breaker_.state(), CircuitBreaker::State::kClosed);
  EXPECT_EQ(metrics_.breaker_open.Value(), 0);
}

TEST_F(ResponseCacheTest, ConcurrentMissesCauseOneFetch) {
  std::vector<std::future<Outcome>> futures;
  for (int i = 0; i < 20; ++i) {
    futures.push_back(std::async(std::launch::async, [this] { return Get("/slow/one"); }));
  }
  for (auto& f : futures) {
    Outcome o = f.get();
    EXPECT_EQ(o.response.body, "slow:one");
    EXPECT_NE(o.cache, CacheStatus::kBypass);
  }
  EXPECT_EQ(fetches_.load(), 1);
  EXPECT_GE(metrics_.coalesced_local.Value() + metrics_.hit.Value(), 19);
}

TEST_F(ResponseCacheTest, UnshareableAnswersAreNotHandedToCoalescedRequests) {
  struct Case {
    std::string cache_control;
    Headers extra;
  };
  const std::vector<Case> cases = {{"max-age=60", {{"Set-Cookie", "session=secret"}}},
                                   {"private, max-age=60", {}},
                                   {"no-store", {}}};
  int path = 0;
  for (const Case& c : cases) {
    SetCacheControl(c.cache_control);
    extra_headers_ = c.extra;
    fetches_ = 0;
    const std::string p = "/personal/" + std::to_string(++path);
    std::vector<std::future<Outcome>> futures;
    for (int i = 0; i < 6; ++i) futures.push_back(std::async(std::launch::async, [this, p] { return Get(p); }));
    std::set<std::string> bodies;
    for (auto& f : futures) bodies.insert(f.get().response.body);
    EXPECT_EQ(bodies.size(), 6u) << c.cache_control << ": every request got its own answer";
    EXPECT_EQ(fetches_.load(), 6) << c.cache_control;
  }
  // A public answer that is merely not storable (max-age=0) is still shared.
  SetCacheControl("public, max-age=0");
  extra_headers_ = {};
  fetches_ = 0;
  std::vector<std::future<Outcome>> futures;
  for (int i = 0; i < 6; ++i) futures.push_back(std::async(std::launch::async, [this] { return Get("/personal/public"); }));
  for (auto& f : futures) f.get();
  EXPECT_LT(fetches_.load(), 6);
}

TEST_F(ResponseCacheTest, TwoNodesSharingTheStoreCauseOneFetch) {
  Make(&store_);
  Make(&store_, &breaker_b_);
  std::vector<std::future<Outcome>> futures;
  for (int i = 0; i < 20; ++i) {
    ResponseCache* c = caches_[i % 2].get();
    futures.push_back(std::async(std::launch::async, [c] { return Get(*c, "/slow/shared"); }));
  }
  for (auto& f : futures) EXPECT_EQ(f.get().response.body, "slow:shared");
  EXPECT_EQ(fetches_.load(), 1);
  EXPECT_GE(metrics_.coalesced_remote.Value(), 1);
}

TEST_F(ResponseCacheTest, ADeadLockHolderBlocksTheKeyOnlyUntilTheLockExpires) {
  const std::string key = CacheKey("/r/dead", "", kSite);
  bool acquired = false;
  ASSERT_TRUE(store_.TryLock(LockKey(key), "a-dead-node", 2000ms, &acquired).ok());
  ASSERT_TRUE(acquired);
  auto pending = std::async(std::launch::async, [this] { return Get("/r/dead"); });
  EXPECT_EQ(pending.wait_for(100ms), std::future_status::timeout);  // waiting for the holder
  EXPECT_EQ(fetches_.load(), 0);
  clock_.Advance(2001ms);  // the lock expires
  Outcome o = pending.get();
  EXPECT_EQ(o.cache, CacheStatus::kMiss);
  EXPECT_EQ(fetches_.load(), 1);
  EXPECT_FALSE(store_.Contains(LockKey(key)));  // released after the fill
  EXPECT_EQ(Get("/r/dead").cache, CacheStatus::kHit);
}

TEST_F(ResponseCacheTest, PurgeRemovesTheEntry) {
  Get("/r/purge", "b=1&a=2");
  EXPECT_EQ(Get("/r/purge", "a=2&b=1").cache, CacheStatus::kHit);
  ASSERT_TRUE(Cache().Purge("/r/purge?b=1&a=2").ok());
  EXPECT_EQ(Get("/r/purge", "a=2&b=1").cache, CacheStatus::kMiss);
  EXPECT_EQ(metrics_.purges.Value(), 1);
  store_.SetDown(true);
  EXPECT_FALSE(Cache().Purge("/r/purge").ok());
}

// A purge that comes while a fill is at the origin fences the fill off: its
// answer, which may predate the purge, goes to its own client but not into
// the store (nor the hot copy), whichever node purged. By path, by tag, and
// by an unsafe method's invalidation.
TEST_F(ResponseCacheTest, APurgeDuringAFillKeepsTheFillsAnswerOutOfTheStore) {
  ResponseCache* other = Make(&store_, &breaker_b_);  // another node on the same store
  ResponseCache& cache = Cache();
  for (const std::string how : {"path", "tag", "unsafe method"}) {
    SCOPED_TRACE(how);
    const std::string path = "/gate/" + how;
    SetGate(false);
    auto fill = std::async(std::launch::async, [&] { return Get(cache, path); });
    ASSERT_TRUE(Eventually([&] { return AtGate() == 1; }));
    if (how == "path") {
      ASSERT_TRUE(other->Purge(path).ok());
    } else if (how == "tag") {
      ASSERT_TRUE(other->PurgeTag("g").ok());
    } else {
      EXPECT_EQ(Get(*other, path, "", "POST").response.status, 200);
    }
    SetGate(true);
    const Outcome answer = fill.get();
    EXPECT_EQ(answer.cache, CacheStatus::kMiss);
    EXPECT_EQ(answer.response.status, 200);
    EXPECT_FALSE(answer.stored);
    EXPECT_FALSE(store_.Contains(CacheKey(path, "", kSite)));
    EXPECT_FALSE(store_.Contains(LockKey(CacheKey(path, "", kSite))));  // released all the same

    // The next request fills again, and that fill is stored.
    const Outcome next = Get(cache, path);
    EXPECT_EQ(next.cache, CacheStatus::kMiss);
    EXPECT_TRUE(next.stored);
    EXPECT_NE(next.response.body, answer.response.body);
    EXPECT_EQ(Get(cache, path).cache, CacheStatus::kHit);
  }
  EXPECT_EQ(metrics_.fenced_fills.Value(), 3);

  // A purge of something else fences nothing.
  SetGate(false);
  auto fill = std::async(std::launch::async, [&] { return Get(cache, "/gate/spared"); });
  ASSERT_TRUE(Eventually([&] { return AtGate() == 1; }));
  ASSERT_TRUE(other->Purge("/gate/elsewhere").ok());
  ASSERT_TRUE(other->PurgeTag("other-tag").ok());
  SetGate(true);
  EXPECT_TRUE(fill.get().stored);
  EXPECT_EQ(Get(cache, "/gate/spared").cache, CacheStatus::kHit);
  EXPECT_EQ(metrics_.fenced_fills.Value(), 3);
}

TEST_F(ResponseCacheTest, TheHotCopySkipsTheStoreForItsWindowOnly) {
  auto cache = Make(&store_, nullptr, Hot(1000ms));
  Outcome miss = Get(*cache, "/r/hot");
  EXPECT_EQ(miss.cache, CacheStatus::kMiss);
  const int calls = store_.calls();
  Outcome hit = Get(*cache, "/r/hot");
  EXPECT_EQ(hit.cache, CacheStatus::kHit);
  EXPECT_EQ(hit.response.body, miss.response.body);
  EXPECT_EQ(store_.calls(), calls);  // no store read
  EXPECT_EQ(metrics_.hot_hits.Value(), 1);
  clock_.Advance(1000ms);  // the window ends: read the store again
  EXPECT_EQ(Get(*cache, "/r/hot").cache, CacheStatus::kHit);
  EXPECT_GT(store_.calls(), calls);
  EXPECT_EQ(Get(*cache, "/r/hot").age_seconds, 1);  // hot again, Age from the record
  EXPECT_EQ(metrics_.hot_hits.Value(), 2);
}

TEST_F(ResponseCacheTest, TheHotCopyNeverOutlivesTheRecordsFreshness) {
  auto cache = Make(&store_, nullptr, Hot(3600s));  // a window far longer than the 10 s TTL
  Get(*cache, "/r/hot-ttl");
  clock_.Advance(9s);
  EXPECT_EQ(Get(*cache, "/r/hot-ttl").cache, CacheStatus::kHit);
  EXPECT_EQ(metrics_.hot_hits.Value(), 1);
  clock_.Advance(1s);  // the TTL ends: stale, from the store, not a hot HIT
  EXPECT_EQ(Get(*cache, "/r/hot-ttl").cache, CacheStatus::kStale);
  EXPECT_EQ(metrics_.hot_hits.Value(), 1);
}

TEST_F(ResponseCacheTest, PurgeDropsTheHotCopyAndTellsTheOtherNodes) {
  auto cache = Make(&store_, nullptr, Hot(60000ms));
  Get(*cache, "/r/hp");
  EXPECT_EQ(Get(*cache, "/r/hp").cache, CacheStatus::kHit);
  ASSERT_TRUE(cache->Purge("/r/hp").ok());
  EXPECT_EQ(Get(*cache, "/r/hp").cache, CacheStatus::kMiss);
  // The key of this release and of the ones before and after it as releases
  // that keyed on neither scheme nor Host wrote them (a rolling upgrade puts
  // them side by side), then every site's key the URL was stored under, each
  // announced to the other nodes.
  const std::string channel = std::string(kPurgeChannel) + " ";
  EXPECT_EQ(store_.published(),
            (std::vector<std::string>{channel + CacheKey("/r/hp", "", "", kRecordVersion - 1),
                                      channel + CacheKey("/r/hp", ""),
                                      channel + CacheKey("/r/hp", "", "", kRecordVersion + 1),
                                      channel + CacheKey("/r/hp", "", kSite)}));
}

TEST_F(ResponseCacheTest, TwoReleasesWithDifferentFormatsShareTheStoreWithoutThrashing) {
  ResponseCache* current = Make(&store_);
  options_.record_version = kRecordVersion + 1;  // the next release, mid rolling upgrade
  ResponseCache* next = Make(&store_);
  EXPECT_EQ(Get(*current, "/r/both").cache, CacheStatus::kMiss);
  EXPECT_EQ(Get(*next, "/r/both").cache, CacheStatus::kMiss);  // its own entry: the other's is no use to it
  for (int i = 0; i < 3; ++i) {
    // Each reads its own format under its own key: neither overwrites the other.
    EXPECT_EQ(Get(*current, "/r/both").cache, CacheStatus::kHit);
    EXPECT_EQ(Get(*next, "/r/both").cache, CacheStatus::kHit);
  }
  EXPECT_EQ(fetches_.load(), 2);
  EXPECT_EQ(metrics_.corrupt_records.Value(), 0);
  // A purge from either release removes both entries.
  ASSERT_TRUE(current->Purge("/r/both").ok());
  EXPECT_EQ(Get(*next, "/r/both").cache, CacheStatus::kMiss);
  EXPECT_EQ(Get(*current, "/r/both").cache, CacheStatus::kMiss);
}

// A lookup that the hot copy cannot answer goes to an idle worker, so the
// calling thread (the server's) never waits for the store; that worker then
// fetches and stores the miss itself instead of handing it on.
TEST_F(ResponseCacheTest, AMissIsLookedUpFetchedAndStoredByTheWorkerThatTookIt) {
  std::mutex mu;
  std::set<std::thread::id> fetched_on;
  Route r;
  r.prefix = "/where/";
  r.label = "/where";
  r.handler = [&](const Request&, std::string_view) {
    std::lock_guard<std::mutex> lock(mu);
    fetched_on.insert(std::this_thread::get_id());
    return Response{200, {{"Cache-Control", "max-age=60"}}, "here"};
  };
  routes_.Add(r);
  ResponseCache& cache = Cache();
  ASSERT_TRUE(Eventually([&] { return workers_.idle() == 32; }));
  const int caller_calls = store_.calls_from(std::this_thread::get_id());
  for (int i = 0; i < 5; ++i) {
    Request req;
    req.method = "GET";
    req.path = "/where/" + std::to_string(i);
    auto answered_on = std::make_shared<std::promise<std::pair<std::thread::id, Outcome>>>();
    cache.Serve(std::move(req),
                [answered_on](Outcome o) { answered_on->set_value({std::this_thread::get_id(), std::move(o)}); });
    auto [thread, outcome] = answered_on->get_future().get();
    EXPECT_EQ(outcome.cache, CacheStatus::kMiss);
    EXPECT_TRUE(outcome.stored);
    EXPECT_NE(thread, std::this_thread::get_id());
    {
      std::lock_guard<std::mutex> lock(mu);
      EXPECT_EQ(fetched_on, std::set<std::thread::id>{thread});  // the worker that answered fetched it
      fetched_on.clear();
    }
    EXPECT_EQ(store_.calls_from(std::this_thread::get_id()), caller_calls);  // none from the caller
    ASSERT_TRUE(Eventually([&] { return workers_.idle() == 32; }));
  }
}

// With every worker busy (a slow origin) the lookup stays on the calling
// thread: hits are still answered there, not queued behind the fetches.
TEST_F(ResponseCacheTest, WithEveryWorkerBusyAHitIsAnsweredOnTheCallingThread) {
  WorkerPool pool("one", 1);
  ResponseCache cache(options_, PartsOn(pool));
  ASSERT_EQ(Get(cache, "/r/kept").cache, CacheStatus::kMiss);
  auto running = std::async(std::launch::async, [&] { return Get(cache, "/slow/1"); });
  ASSERT_TRUE(Eventually([&] { return fetches_.load() == 2 && pool.idle() == 0; }));  // the only worker is busy
  const int before = store_.calls_from(std::this_thread::get_id());
  std::thread::id answered_on;
  Request req;
  req.method = "GET";
  req.path = "/r/kept";
  Outcome hit;
  cache.Serve(std::move(req), [&](Outcome o) {
    answered_on = std::this_thread::get_id();
    hit = std::move(o);
  });
  EXPECT_EQ(answered_on, std::this_thread::get_id());  // answered before Serve returned
  EXPECT_EQ(hit.cache, CacheStatus::kHit);
  EXPECT_EQ(store_.calls_from(std::this_thread::get_id()) - before, 1);
  EXPECT_EQ(running.get().response.status, 200);
}

TEST_F(ResponseCacheTest, AFullWorkerQueueAnswers503Quickly) {
  WorkerPool pool("tiny", 1, 1);  // one running, one queued
  auto cache = std::make_unique<ResponseCache>(options_, PartsOn(pool));
  auto running = std::async(std::launch::async, [&] { return Get(*cache, "/slow/1"); });
  ASSERT_TRUE(Eventually([&] { return fetches_.load() == 1; }));  // the only worker is busy
  auto queued = std::async(std::launch::async, [&] { return Get(*cache, "/slow/2"); });
  ASSERT_TRUE(Eventually([&] { return pool.queued() == 1; }));
  Outcome refused = Get(*cache, "/slow/3");
  EXPECT_EQ(refused.response.status, 503);
  EXPECT_EQ(FindHeader(refused.response.headers, "Retry-After"), "1");
  // Its lookup took the fill lock; refused, it gave it back.
  EXPECT_FALSE(store_.Contains(LockKey(CacheKey("/slow/3", "", kSite))));
  EXPECT_EQ(running.get().response.status, 200);
  EXPECT_EQ(queued.get().response.status, 200);
  EXPECT_EQ(Get(*cache, "/slow/3").response.status, 200);  // room again: a normal miss
}

TEST_F(ResponseCacheTest, AStaleEntryIsRevalidatedAndA304UpdatesIt) {
  Outcome first = Get("/v/x");
  EXPECT_EQ(first.response.body, "v1");
  clock_.Advance(2s);  // stale (max-age=1)
  Outcome revalidated = Get("/v/x");
  EXPECT_EQ(revalidated.cache, CacheStatus::kMiss);
  EXPECT_EQ(revalidated.forward, Forward::kStale);
  EXPECT_EQ(revalidated.forward_status, 304);
  EXPECT_EQ(revalidated.response.status, 200);
  EXPECT_EQ(revalidated.response.body, "v1");
  EXPECT_EQ(FindHeader(revalidated.response.headers, "X-Updated"), "yes");
  {
    std::lock_guard<std::mutex> lock(mu_);
    ASSERT_EQ(seen_.size(), 2u);
    EXPECT_EQ(FindHeader(seen_[1], "If-None-Match"), "\"e1\"");
  }
  clock_.Advance(50s);  // the 304's max-age=100 now applies
  Outcome hit = Get("/v/x");
  EXPECT_EQ(hit.cache, CacheStatus::kHit);
  EXPECT_EQ(hit.response.body, "v1");
  EXPECT_EQ(fetches_.load(), 2);
  // A changed representation: the origin answers 200, which replaces the entry.
  clock_.Advance(100s);
  {
    std::lock_guard<std::mutex> lock(mu_);
    version_ = 2;
  }
  EXPECT_EQ(Get("/v/x").response.body, "v2");
  EXPECT_EQ(Get("/v/x").response.body, "v2");
}

TEST_F(ResponseCacheTest, ClientConditionalsAreAnsweredFromTheCache) {
  Get("/v/c");
  Outcome nm = Get("/v/c", "", "GET", {{"If-None-Match", "\"e1\""}});
  EXPECT_EQ(nm.cache, CacheStatus::kHit);
  EXPECT_EQ(nm.response.status, 304);
  EXPECT_TRUE(nm.response.body.empty());
  EXPECT_EQ(Get("/v/c", "", "GET", {{"If-None-Match", "\"other\""}}).response.status, 200);
  EXPECT_EQ(fetches_.load(), 1);
}

TEST_F(ResponseCacheTest, AByteRangeOfAStoredResponseIsA206) {
  Outcome full = Get("/r/range");
  const std::string body = full.response.body;
  Outcome part = Get("/r/range", "", "GET", {{"Range", "bytes=0-1"}});
  EXPECT_EQ(part.cache, CacheStatus::kHit);
  EXPECT_EQ(part.response.status, 206);
  EXPECT_EQ(part.response.body, body.substr(0, 2));
  EXPECT_EQ(FindHeader(part.response.headers, "Content-Range"), "bytes 0-1/" + std::to_string(body.size()));
  EXPECT_EQ(Get("/r/range", "", "GET", {{"Range", "bytes=-3"}}).response.body, body.substr(body.size() - 3));
  EXPECT_EQ(Get("/r/range", "", "GET", {{"Range", "bytes=2-"}}).response.body, body.substr(2));
  // Several ranges, unsatisfiable ones, other units: the whole response.
  for (const char* r : {"bytes=0-1,3-4", "bytes=999-", "items=0-1", "bytes=x-"}) {
    Outcome whole = Get("/r/range", "", "GET", {{"Range", r}});
    EXPECT_EQ(whole.response.status, 200) << r;
    EXPECT_EQ(whole.response.body, body) << r;
  }
  EXPECT_EQ(fetches_.load(), 1);
}

TEST_F(ResponseCacheTest, TheClientsOwnDirectivesAreHonoured) {
  Get("/v/cc");
  clock_.Advance(500ms);
  // no-cache / max-age=0: revalidated with the origin (a conditional request).
  Outcome revalidated = Get("/v/cc", "", "GET", {{"Cache-Control", "no-cache"}});
  EXPECT_EQ(revalidated.forward, Forward::kStale);
  EXPECT_EQ(revalidated.forward_status, 304);
  EXPECT_EQ(fetches_.load(), 2);
  // min-fresh beyond what is left: to the origin; within: a hit.
  EXPECT_EQ(Get("/v/cc", "", "GET", {{"Cache-Control", "min-fresh=50"}}).cache, CacheStatus::kHit);
  EXPECT_EQ(Get("/v/cc", "", "GET", {{"Cache-Control", "min-fresh=500"}}).cache, CacheStatus::kMiss);
  // max-stale accepts a stale response the origin did not forbid.
  SetCacheControl("max-age=1");
  Get("/r/ms");
  clock_.Advance(5s);
  Outcome stale = Get("/r/ms", "", "GET", {{"Cache-Control", "max-stale=100"}});
  EXPECT_EQ(stale.cache, CacheStatus::kStale);
  EXPECT_EQ(Get("/r/ms", "", "GET", {{"Cache-Control", "max-stale=1"}}).cache, CacheStatus::kMiss);
  // only-if-cached without a stored response: 504, the origin is not asked.
  const int before = fetches_.load();
  Outcome none = Get("/r/oic", "", "GET", {{"Cache-Control", "only-if-cached"}});
  EXPECT_EQ(none.response.status, 504);
  EXPECT_EQ(fetches_.load(), before);
}

TEST_F(ResponseCacheTest, VariantsAreKeyedOnEveryVaryLine) {
  Outcome de = Get("/vary/p", "", "GET", {{"X-Lang", "de"}, {"X-Region", "at"}});
  Outcome fr = Get("/vary/p", "", "GET", {{"X-Lang", "fr"}, {"X-Region", "at"}});
  Outcome de_ch = Get("/vary/p", "", "GET", {{"X-Lang", "de"}, {"X-Region", "ch"}});
  EXPECT_EQ(de.response.body.substr(0, 5), "de/at");
  EXPECT_EQ(fr.response.body.substr(0, 5), "fr/at");
  EXPECT_EQ(de_ch.response.body.substr(0, 5), "de/ch");
  EXPECT_EQ(fetches_.load(), 3);
  // Every variant is a hit for its own request, never for another's.
  for (const auto& [lang, region, body] : {std::tuple{"de", "at", de.response.body}, std::tuple{"fr", "at", fr.response.body},
                                          std::tuple{"de", "ch", de_ch.response.body}}) {
    Outcome o = Get("/vary/p", "", "GET", {{"X-Lang", lang}, {"X-Region", region}});
    EXPECT_EQ(o.cache, CacheStatus::kHit) << lang << region;
    EXPECT_EQ(o.response.body, body);
  }
  EXPECT_EQ(fetches_.load(), 3);
  // A purge removes every variant.
  ASSERT_TRUE(Cache().Purge("/vary/p").ok());
  EXPECT_EQ(Get("/vary/p", "", "GET", {{"X-Lang", "fr"}, {"X-Region", "at"}}).cache, CacheStatus::kMiss);
  EXPECT_EQ(Get("/vary/p", "", "GET", {{"X-Lang", "de"}, {"X-Region", "at"}}).cache, CacheStatus::kMiss);
}

TEST_F(ResponseCacheTest, CoalescedRequestsAreEachAnsweredForTheirOwnRequest) {
  // The first request carries Range and a conditional; plain GETs and another
  // variant wait on its fetch. The fetch carries neither, and each request
  // gets what it asked for: the leader a 304, the plain GETs the full body,
  // the other variant its own fetch.
  std::vector<std::future<Outcome>> futures;
  futures.push_back(std::async(std::launch::async, [this] {
    return Get("/vary/c", "", "GET", {{"X-Lang", "de"}, {"Range", "bytes=0-1"}, {"If-None-Match", "\"t\""}});
  }));
  std::this_thread::sleep_for(10ms);
  for (int i = 0; i < 4; ++i) {
    futures.push_back(std::async(std::launch::async, [this] { return Get("/vary/c", "", "GET", {{"X-Lang", "de"}}); }));
  }
  futures.push_back(std::async(std::launch::async, [this] { return Get("/vary/c", "", "GET", {{"X-Lang", "fr"}}); }));
  std::vector<Outcome> got;
  for (auto& f : futures) got.push_back(f.get());
  EXPECT_EQ(got[0].response.status, 304);
  for (int i = 1; i <= 4; ++i) {
    EXPECT_EQ(got[i].response.status, 200) << i;
    EXPECT_EQ(got[i].response.body.substr(0, 3), "de/") << i;
  }
  EXPECT_EQ(got[5].response.status, 200);
  EXPECT_EQ(got[5].response.body.substr(0, 3), "fr/");
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& headers : seen_) {
    EXPECT_FALSE(HasHeader(headers, "Range"));
    EXPECT_FALSE(HasHeader(headers, "If-None-Match"));
  }
  EXPECT_EQ(seen_.size(), 2u);  // one fetch per variant
}

TEST_F(ResponseCacheTest, UnsafeMethodsInvalidateTheUrl) {
  Get("/r/inv");
  EXPECT_EQ(Get("/r/inv").cache, CacheStatus::kHit);
  SetStatus(500);
  Get("/r/inv", "", "POST");  // a failed POST changes nothing
  SetStatus(200);
  EXPECT_EQ(Get("/r/inv").cache, CacheStatus::kHit);
  for (const char* method : {"POST", "PUT", "DELETE", "PATCH"}) {
    Get("/r/inv", "", method);
    EXPECT_EQ(Get("/r/inv").cache, CacheStatus::kMiss) << method;
    EXPECT_EQ(Get("/r/inv").cache, CacheStatus::kHit) << method;
  }
  // Location and Content-Location on this origin go too; another origin's do not.
  Get("/r/target");
  Get("/r/other");
  extra_headers_ = {{"Location", "target"}, {"Content-Location", "http://elsewhere.example/r/other"}};
  Get("/r/form", "", "POST");
  extra_headers_ = {};
  EXPECT_EQ(Get("/r/target").cache, CacheStatus::kMiss);
  EXPECT_EQ(Get("/r/other").cache, CacheStatus::kHit);
}

TEST_F(ResponseCacheTest, SurrogateKeyTagsPurgeEveryUrlThatListedThem) {
  extra_headers_ = {{"Surrogate-Key", "news front"}};
  Get("/r/a1");
  extra_headers_ = {{"Surrogate-Key", "news"}};
  Get("/r/a2");
  extra_headers_ = {};
  Get("/r/a3");
  size_t purged = 0;
  ASSERT_TRUE(Cache().PurgeTag("news", &purged).ok());
  EXPECT_EQ(purged, 2u);
  EXPECT_EQ(Get("/r/a1").cache, CacheStatus::kMiss);
  EXPECT_EQ(Get("/r/a2").cache, CacheStatus::kMiss);
  EXPECT_EQ(Get("/r/a3").cache, CacheStatus::kHit);
  ASSERT_TRUE(Cache().PurgeTag("nothing", &purged).ok());
  EXPECT_EQ(purged, 0u);
}

TEST_F(ResponseCacheTest, MustRevalidateAndSMaxAgeForbidStaleAnswers) {
  for (const char* cc : {"max-age=10, must-revalidate, stale-while-revalidate=60", "s-maxage=10, stale-if-error=60",
                         "max-age=10, proxy-revalidate"}) {
    SetCacheControl(cc);
    const std::string path = std::string("/r/mr") + cc;
    Get(path);
    clock_.Advance(11s);
    SetStatus(503);
    Outcome o = Get(path);
    EXPECT_EQ(o.response.status, 503) << cc;
    EXPECT_NE(o.cache, CacheStatus::kStale) << cc;
    SetStatus(200);
  }
}

TEST_F(ResponseCacheTest, CacheStatusNamesWhatHappened) {
  Outcome miss = Get("/r/cs");
  EXPECT_EQ(CacheStatusField(miss), "webtier; fwd=uri-miss; fwd-status=200; stored");
  clock_.Advance(2s);
  Outcome hit = Get("/r/cs");
  EXPECT_EQ(CacheStatusField(hit), "webtier; hit; ttl=8");
  EXPECT_EQ(CacheStatusField(Get("/r/cs", "", "POST")), "webtier; fwd=bypass; fwd-status=200");
}

TEST(HotCacheTest, IsBounded) {
  testing::FakeClock clock;
  HotCache hot(32, 1000ms, &clock);
  auto record = std::make_shared<Record>();
  record->stored_at_ms = clock.UnixMillis();
  record->ttl_ms = 60000;
  for (int i = 0; i < 1000; ++i) hot.Put("k" + std::to_string(i), record);
  EXPECT_LE(hot.size(), 32u + 16u);
  hot.Put("x", record);
  EXPECT_NE(hot.Get("x"), nullptr);
  hot.Erase("x");
  EXPECT_EQ(hot.Get("x"), nullptr);
  HotCache off(32, 0ms, &clock);
  off.Put("x", record);
  EXPECT_EQ(off.Get("x"), nullptr);
}

}  // namespace
}  // namespace webtier::cache
