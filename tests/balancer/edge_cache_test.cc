// The edge cache's store (admission, eviction, the byte bound, freshness, the
// window, erasure) with a fake clock, and its HTTP rules (edge/edge_http.h)
// on parsed Beast messages.
#include <gtest/gtest.h>

#include <boost/beast/http.hpp>

#include "edge/edge_http.h"
#include "fakes.h"
#include "webtier/balancer/edge/edge_cache.h"

namespace webtier::balancer::edge {
namespace {

namespace http = boost::beast::http;
using cache::testing::FakeClock;
using std::chrono::milliseconds;

std::shared_ptr<EdgeObject> Object(FakeClock& clock, std::string url, size_t body_bytes = 100,
                                   int64_t lifetime_ms = 60000, std::string site = "http://a.example") {
  auto o = std::make_shared<EdgeObject>();
  o->response.status = 200;
  o->response.headers = {{"content-type", "text/plain"}};
  o->head_fields = "Content-Type: text/plain\r\n";
  o->response.body.assign(body_bytes, 'x');
  o->site = std::move(site);
  o->url = std::move(url);
  o->response_ms = clock.UnixMillis();
  o->lifetime_ms = lifetime_ms;
  return o;
}

const SelectingFn kNoVary = [](const cache::Vary&) { return std::string(); };

// Looks `url` up and, on a miss, offers `object` as the tier's answer would be.
bool FindOrInsert(EdgeCache& edge, FakeClock& clock, const std::string& url, size_t body_bytes = 100) {
  const Lookup l = edge.Find("http://a.example", url, kNoVary);
  if (l.kind == Lookup::Kind::kHit) return true;
  edge.Insert(Object(clock, url, body_bytes), l.epoch);
  return false;
}

TEST(EdgeCacheTest, ServesWhatWasInsertedUntilItsFreshnessEnds) {
  FakeClock clock;
  EdgeCache edge({1 << 20, 1 << 20, milliseconds(100000)}, &clock);
  Lookup l = edge.Find("http://a.example", "/x", kNoVary);
  EXPECT_EQ(l.kind, Lookup::Kind::kMiss);
  ASSERT_TRUE(edge.Insert(Object(clock, "/x", 100, 5000), l.epoch));
  EXPECT_EQ(edge.Find("http://a.example", "/x", kNoVary).kind, Lookup::Kind::kHit);
  // Another site, same path: its own entry.
  EXPECT_EQ(edge.Find("https://a.example", "/x", kNoVary).kind, Lookup::Kind::kMiss);
  clock.Advance(milliseconds(4999));
  EXPECT_EQ(edge.Find("http://a.example", "/x", kNoVary).kind, Lookup::Kind::kHit);
  clock.Advance(milliseconds(1));
  EXPECT_EQ(edge.Find("http://a.example", "/x", kNoVary).kind, Lookup::Kind::kMiss);
  EXPECT_EQ(edge.Stats().objects, 0u) << "an expired object goes when found";
}

// --edge-cache-min-uses: an answer is offered from the Nth request for its
// URL on, so a one-hit URL never costs the edge a copy; an answer that
// replaces a stored object, or one fetched without a lookup, always is.
TEST(EdgeCacheTest, AnAnswerIsOfferedFromItsUrlsMinUsesthRequestOn) {
  FakeClock clock;
  EdgeCache edge({1 << 20, 1 << 20, milliseconds(100000), 3}, &clock);
  Lookup first = edge.Find("http://a.example", "/x", kNoVary);
  EXPECT_EQ(first.uses, 1);
  EXPECT_FALSE(edge.MayOffer(first, true));
  EXPECT_EQ(edge.Find("http://a.example", "/x", kNoVary).uses, 2);
  const Lookup third = edge.Find("http://a.example", "/x", kNoVary);
  EXPECT_EQ(third.uses, 3);
  ASSERT_TRUE(edge.MayOffer(third, true));
  ASSERT_TRUE(edge.Insert(Object(clock, "/x", 100, 5000), third.epoch));
  EXPECT_EQ(edge.Find("http://a.example", "/x", kNoVary).kind, Lookup::Kind::kHit);
  // Another URL's uses are its own; without a lookup (a request that asks
  // the tier itself) the answer is offered.
  const Lookup other = edge.Find("http://a.example", "/y", kNoVary);
  EXPECT_EQ(other.uses, 1);
  EXPECT_FALSE(edge.MayOffer(other, true));
  EXPECT_TRUE(edge.MayOffer(Lookup{}, false));
  // Stored and expired: the object found overdue is replaced whatever the count.
  Lookup overdue;
  overdue.object = std::make_shared<EdgeObject>();
  EXPECT_TRUE(edge.MayOffer(overdue, true));
  EXPECT_EQ(edge.Stats().too_few_uses, 2u);
  // With 1, every answer is offered.
  EdgeCache every({1 << 20, 1 << 20, milliseconds(100000), 1}, &clock);
  EXPECT_TRUE(every.MayOffer(every.Find("http://a.example", "/z", kNoVary), true));
}

TEST(EdgeCacheTest, AnObjectGoesBackToTheTierOncePerWindow) {
  FakeClock clock;
  EdgeCache edge({1 << 20, 1 << 20, milliseconds(1000)}, &clock);
  ASSERT_TRUE(edge.Insert(Object(clock, "/x"), edge.Find("http://a.example", "/x", kNoVary).epoch));
  clock.Advance(milliseconds(999));
  EXPECT_EQ(edge.Find("http://a.example", "/x", kNoVary).kind, Lookup::Kind::kHit);
  clock.Advance(milliseconds(1));
  // Due: the first request refreshes it, the others are served meanwhile.
  const Lookup first = edge.Find("http://a.example", "/x", kNoVary);
  EXPECT_EQ(first.kind, Lookup::Kind::kRefresh);
  EXPECT_EQ(edge.Find("http://a.example", "/x", kNoVary).kind, Lookup::Kind::kHit);
  // A refresh that does not come back within another window is not waited for.
  clock.Advance(milliseconds(1000));
  const Lookup overdue = edge.Find("http://a.example", "/x", kNoVary);
  EXPECT_EQ(overdue.kind, Lookup::Kind::kMiss);
  ASSERT_NE(overdue.object, nullptr);
  // The answer replaces it and starts a new window.
  ASSERT_TRUE(edge.Insert(Object(clock, "/x"), overdue.epoch));
  EXPECT_EQ(edge.Stats().objects, 1u);
  EXPECT_EQ(edge.Find("http://a.example", "/x", kNoVary).kind, Lookup::Kind::kHit);
  // A refresh whose answer may no longer be kept takes the object away.
  clock.Advance(milliseconds(1000));
  const Lookup again = edge.Find("http://a.example", "/x", kNoVary);
  ASSERT_EQ(again.kind, Lookup::Kind::kRefresh);
  edge.Drop(again.object);
  EXPECT_EQ(edge.Find("http://a.example", "/x", kNoVary).kind, Lookup::Kind::kMiss);
}

TEST(EdgeCacheTest, WhileTheChannelStandsObjectsLiveTheirWholeFreshness) {
  FakeClock clock;
  EdgeCache edge({1 << 20, 1 << 20, milliseconds(1000)}, &clock);
  edge.SetFollowing(true);
  ASSERT_TRUE(edge.Insert(Object(clock, "/x", 100, 60000), edge.Find("http://a.example", "/x", kNoVary).epoch));
  clock.Advance(milliseconds(30000));
  EXPECT_EQ(edge.Find("http://a.example", "/x", kNoVary).kind, Lookup::Kind::kHit);
  // The channel lost: the window applies again, and this object is long overdue.
  edge.SetFollowing(false);
  EXPECT_EQ(edge.Find("http://a.example", "/x", kNoVary).kind, Lookup::Kind::kMiss);
  edge.SetFollowing(true);
  clock.Advance(milliseconds(30000));
  EXPECT_EQ(edge.Find("http://a.example", "/x", kNoVary).kind, Lookup::Kind::kMiss) << "past its freshness";
}

TEST(EdgeCacheTest, VariantsOfOneUrlAreKeptApartAndErasedTogether) {
  FakeClock clock;
  EdgeCache edge({1 << 20, 1 << 20, milliseconds(100000)}, &clock);
  cache::Vary vary;
  vary.names = {"accept-language"};
  for (std::string lang : {"en", "fr"}) {
    auto o = Object(clock, "/v");
    o->vary = vary;
    o->variant = lang;
    o->response.body = lang;
    const SelectingFn select = [lang](const cache::Vary&) { return lang; };
    ASSERT_TRUE(edge.Insert(o, edge.Find("http://a.example", "/v", select).epoch));
  }
  for (std::string lang : {"en", "fr"}) {
    const SelectingFn select = [lang](const cache::Vary&) { return lang; };
    const Lookup l = edge.Find("http://a.example", "/v", select);
    ASSERT_EQ(l.kind, Lookup::Kind::kHit) << lang;
    EXPECT_EQ(l.object->response.body, lang);
  }
  const SelectingFn german = [](const cache::Vary&) { return std::string("de"); };
  EXPECT_EQ(edge.Find("http://a.example", "/v", german).kind, Lookup::Kind::kMiss);
  EXPECT_EQ(edge.Erase("/v"), 2u);
  EXPECT_EQ(edge.Stats().objects, 0u);
}

TEST(EdgeCacheTest, AnAnswerFetchedBeforeAnEraseIsNotKept) {
  FakeClock clock;
  EdgeCache edge({1 << 20, 1 << 20, milliseconds(100000)}, &clock);
  const Lookup l = edge.Find("http://a.example", "/x", kNoVary);
  edge.Erase("/x");  // a purge while the answer was on its way
  EXPECT_FALSE(edge.Insert(Object(clock, "/x"), l.epoch));
  clock.Advance(edge.options().settle);
  EXPECT_TRUE(edge.Insert(Object(clock, "/x"), edge.Find("http://a.example", "/x", kNoVary).epoch));
}

// A webnode that has not heard of a purge yet may answer from its hot copy
// for up to cache::kHotCopyWindow after it: an answer fetched after the erase
// is not kept until then, or the purged answer would live out its freshness
// here. Other URLs are kept meanwhile; an erase of everything holds them all.
TEST(EdgeCacheTest, NoAnswerForAnErasedUrlIsKeptUntilTheTierHasSettled) {
  FakeClock clock;
  EdgeCache edge({1 << 20, 1 << 20, milliseconds(100000)}, &clock);
  ASSERT_EQ(edge.options().settle, cache::kHotCopyWindow);
  ASSERT_TRUE(edge.Insert(Object(clock, "/x"), edge.Find("http://a.example", "/x", kNoVary).epoch));
  EXPECT_EQ(edge.Erase("/x"), 1u);
  clock.Advance(milliseconds(5));
  const Lookup after = edge.Find("http://a.example", "/x", kNoVary);
  EXPECT_EQ(after.kind, Lookup::Kind::kMiss);
  EXPECT_FALSE(edge.Insert(Object(clock, "/x"), after.epoch)) << "the tier may still give out the purged answer";
  EXPECT_TRUE(edge.Insert(Object(clock, "/y"), edge.Find("http://a.example", "/y", kNoVary).epoch));
  clock.Advance(edge.options().settle - milliseconds(6));
  EXPECT_FALSE(edge.Insert(Object(clock, "/x"), edge.Find("http://a.example", "/x", kNoVary).epoch));
  clock.Advance(milliseconds(1));
  EXPECT_TRUE(edge.Insert(Object(clock, "/x"), edge.Find("http://a.example", "/x", kNoVary).epoch));

  edge.EraseAll();
  EXPECT_FALSE(edge.Insert(Object(clock, "/z"), edge.Find("http://a.example", "/z", kNoVary).epoch));
  clock.Advance(edge.options().settle);
  EXPECT_TRUE(edge.Insert(Object(clock, "/z"), edge.Find("http://a.example", "/z", kNoVary).epoch));
}

// The erases a shard remembers one by one are bounded (past the bound they
// count as an erase of everything): a flood of unsafe requests to distinct
// URLs, more than every shard can list, still never lets an answer for an
// erased URL in before the tier settled.
TEST(EdgeCacheTest, AFloodOfErasesToDistinctUrlsKeepsTheRule) {
  FakeClock clock;
  EdgeCache edge({1 << 20, 1 << 20, milliseconds(100000)}, &clock);
  for (int i = 0; i < 1100000; ++i) edge.Erase("/flood/" + std::to_string(i));
  // Every one of them is still within the settle time (the clock stood).
  for (int i : {0, 1, 777777, 1099999}) {
    const std::string url = "/flood/" + std::to_string(i);
    EXPECT_FALSE(edge.Insert(Object(clock, url), edge.Find("http://a.example", url, kNoVary).epoch)) << url;
  }
  clock.Advance(edge.options().settle);
  for (int i = 0; i < 1000; ++i) edge.Erase("/later/" + std::to_string(i));
  EXPECT_TRUE(edge.Insert(Object(clock, "/flood/5"), edge.Find("http://a.example", "/flood/5", kNoVary).epoch));
  EXPECT_FALSE(edge.Insert(Object(clock, "/later/5"), edge.Find("http://a.example", "/later/5", kNoVary).epoch));
}

TEST(EdgeCacheTest, ChargedBytesNeverExceedTheCapacity) {
  FakeClock clock;
  const uint64_t capacity = 1 << 20;
  EdgeCache edge({capacity, 1 << 20, milliseconds(100000)}, &clock);
  for (int i = 0; i < 20000; ++i) {
    // Objects fresh for 2 s, one new every millisecond: the expired ones make room.
    const std::string url = "/o/" + std::to_string(i);
    const Lookup l = edge.Find("http://a.example", url, kNoVary);
    edge.Insert(Object(clock, url, 500 + (i % 7) * 300, 2000), l.epoch);
    clock.Advance(milliseconds(1));
    ASSERT_LE(edge.Stats().bytes, capacity);
  }
  const EdgeStats s = edge.Stats();
  EXPECT_GT(s.evictions, 0u);
  EXPECT_GT(s.bytes, capacity / 2) << "the memory is used";
  EXPECT_EQ(EdgeCache::ChargeOf(*Object(clock, "/o/1", 500)) > 500, true);
}

TEST(EdgeCacheTest, AScanOfOneHitUrlsDoesNotFlushTheHotSet) {
  FakeClock clock;
  EdgeCache edge({1 << 20, 1 << 20, milliseconds(10000000)}, &clock);
  // A hot set that fills about half the memory, asked for again and again.
  const int kHot = 500;
  for (int round = 0; round < 5; ++round) {
    for (int i = 0; i < kHot; ++i) FindOrInsert(edge, clock, "/hot/" + std::to_string(i), 900);
  }
  // Then 200 000 URLs asked for once each, interleaved with the hot traffic.
  int hot_hits = 0, hot_lookups = 0;
  for (int i = 0; i < 200000; ++i) {
    FindOrInsert(edge, clock, "/scan/" + std::to_string(i), 900);
    if (i % 10 == 0) {
      ++hot_lookups;
      hot_hits += FindOrInsert(edge, clock, "/hot/" + std::to_string((i / 10) % kHot), 900) ? 1 : 0;
    }
  }
  EXPECT_GE(hot_hits, hot_lookups * 95 / 100) << hot_hits << " of " << hot_lookups;
  int still = 0;
  for (int i = 0; i < kHot; ++i) still += FindOrInsert(edge, clock, "/hot/" + std::to_string(i), 900) ? 1 : 0;
  EXPECT_GE(still, kHot * 95 / 100);
  EXPECT_GT(edge.Stats().rejected, 100000u) << "the scan was refused admission";
}

TEST(EdgeCacheTest, ANewlyPopularUrlGetsIn) {
  FakeClock clock;
  EdgeCache edge({256 << 10, 1 << 20, milliseconds(10000000)}, &clock);
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 1000; ++i) FindOrInsert(edge, clock, "/old/" + std::to_string(i), 900);
  }
  // A URL that becomes popular wins admission after a few requests.
  int tries = 0;
  while (!FindOrInsert(edge, clock, "/new", 900) && tries < 50) ++tries;
  EXPECT_LT(tries, 20);
}

TEST(EdgeCacheTest, EraseAllEmptiesEveryShard) {
  FakeClock clock;
  EdgeCache edge({1 << 20, 1 << 20, milliseconds(100000)}, &clock);
  for (int i = 0; i < 100; ++i) FindOrInsert(edge, clock, "/e/" + std::to_string(i));
  EXPECT_EQ(edge.Stats().objects, 100u);
  EXPECT_EQ(edge.EraseAll(), 100u);
  const EdgeStats s = edge.Stats();
  EXPECT_EQ(s.objects, 0u);
  EXPECT_EQ(s.bytes, 0u);
  EXPECT_FALSE(FindOrInsert(edge, clock, "/e/1"));
}

// --- HTTP rules ---

http::request<http::string_body> Get(std::string target, std::vector<std::pair<std::string, std::string>> fields = {},
                                     http::verb method = http::verb::get) {
  http::request<http::string_body> req{method, target, 11};
  req.set(http::field::host, "WWW.Example.com:80");
  for (const auto& [name, value] : fields) req.insert(name, value);
  return req;
}

http::response_header<> Answer(std::vector<std::pair<std::string, std::string>> fields, int status = 200) {
  http::response_header<> head;
  head.result(status);
  for (const auto& [name, value] : fields) head.insert(name, value);
  return head;
}

TEST(EdgeHttpTest, ClassifiesRequests) {
  EdgeRequest r = ClassifyRequest(Get("/p?b=2&a=1&"), false);
  EXPECT_TRUE(r.lookup);
  EXPECT_TRUE(r.store);
  EXPECT_EQ(r.site, "http://www.example.com");
  EXPECT_EQ(r.url, "/p?a=1&b=2");
  EXPECT_EQ(ClassifyRequest(Get("/p"), true).site, "https://www.example.com:80");
  const EdgeRequest head = ClassifyRequest(Get("/p", {}, http::verb::head), false);
  EXPECT_TRUE(head.lookup);
  EXPECT_FALSE(head.store);
  for (const auto& field : std::vector<std::pair<std::string, std::string>>{
           {"Authorization", "Basic eDp5"}, {"Cookie", "a=b"}, {"Range", "bytes=0-1"}, {"If-Match", "\"a\""},
           {"Cache-Control", "no-store"}, {"Upgrade", "websocket"}}) {
    const EdgeRequest refused = ClassifyRequest(Get("/p", {field}), false);
    EXPECT_FALSE(refused.lookup) << field.first;
    EXPECT_FALSE(refused.store) << field.first;
  }
  const EdgeRequest no_cache = ClassifyRequest(Get("/p", {{"Cache-Control", "no-cache"}}), false);
  EXPECT_FALSE(no_cache.lookup);
  EXPECT_TRUE(no_cache.store);
  EXPECT_FALSE(ClassifyRequest(Get("/p", {{"Pragma", "no-cache"}}), false).lookup);
  const EdgeRequest max_age = ClassifyRequest(Get("/p", {{"Cache-Control", "max-age=5, min-fresh=2"}}), false);
  EXPECT_TRUE(max_age.lookup);
  EXPECT_EQ(max_age.max_age_s, 5);
  EXPECT_EQ(max_age.min_fresh_s, 2);
  EXPECT_FALSE(ClassifyRequest(Get("//evil/p"), false).lookup);
  auto bad_host = Get("/p");
  bad_host.set(http::field::host, "a b");
  EXPECT_FALSE(ClassifyRequest(bad_host, false).lookup);
  const EdgeRequest post = ClassifyRequest(Get("/p?x=1", {}, http::verb::post), false);
  EXPECT_TRUE(post.unsafe);
  EXPECT_FALSE(post.lookup);
  EXPECT_EQ(post.url, "/p?x=1");
  EXPECT_FALSE(ClassifyRequest(Get("/p", {}, http::verb::options), false).unsafe);
}

TEST(EdgeHttpTest, KeepsOnlyFreshShareableAnswers) {
  const auto req = Get("/p");
  const EdgeRequest r = ClassifyRequest(req, false);
  const int64_t now = 1'700'000'000'000;
  auto keep = [&](const http::response_header<>& head, std::optional<uint64_t> length = 10) {
    return ObjectFor(head, length, r, req, now, now, 1000) != nullptr;
  };
  EXPECT_TRUE(keep(Answer({{"Cache-Control", "public, max-age=60"}})));
  EXPECT_TRUE(keep(Answer({{"Cache-Control", "s-maxage=60"}})));
  EXPECT_FALSE(keep(Answer({{"Cache-Control", "private, max-age=60"}})));
  EXPECT_FALSE(keep(Answer({{"Cache-Control", "no-store"}})));
  EXPECT_FALSE(keep(Answer({{"Cache-Control", "no-cache, max-age=60"}, {"ETag", "\"a\""}})));
  EXPECT_FALSE(keep(Answer({{"Cache-Control", "max-age=60, no-cache=\"x-a\""}})));
  EXPECT_FALSE(keep(Answer({{"Cache-Control", "max-age=60"}, {"Set-Cookie", "a=b"}})));
  EXPECT_FALSE(keep(Answer({{"Cache-Control", "max-age=60"}, {"Vary", "*"}})));
  EXPECT_FALSE(keep(Answer({{"Cache-Control", "max-age=60"}, {"Age", "60"}})));
  EXPECT_FALSE(keep(Answer({{"Cache-Control", "max-age=0"}})));
  EXPECT_FALSE(keep(Answer({{"Cache-Control", "max-age=60"}}, 206)));
  EXPECT_FALSE(keep(Answer({{"Cache-Control", "max-age=60"}}), std::nullopt)) << "no Content-Length";
  EXPECT_FALSE(keep(Answer({{"Cache-Control", "max-age=60"}}), 1001)) << "over the object limit";
  EXPECT_FALSE(keep(Answer({})));  // nothing says it may be reused
}

TEST(EdgeHttpTest, AStoredAnswerDropsHopByHopAndPerAnswerFields) {
  const auto req = Get("/p", {{"Accept-Language", "fr"}});
  const EdgeRequest r = ClassifyRequest(req, false);
  const auto head = Answer({{"Cache-Control", "max-age=60"}, {"Connection", "x-hop"}, {"X-Hop", "1"},
                            {"Keep-Alive", "timeout=5"}, {"Age", "10"}, {"X-Request-Id", "abc"}, {"X-Cache", "MISS"},
                            {"Content-Length", "2"}, {"Vary", "Accept-Language"}, {"ETag", "\"e\""}});
  const int64_t now = 1'700'000'000'000;
  const auto o = ObjectFor(head, 2, r, req, now, now, 1000);
  ASSERT_NE(o, nullptr);
  EXPECT_EQ(o->head_fields, "Cache-Control: max-age=60\r\nVary: Accept-Language\r\nETag: \"e\"\r\n");
  EXPECT_EQ(o->initial_age_ms, 10000);
  EXPECT_EQ(o->lifetime_ms, 60000);
  EXPECT_EQ(o->variant, SelectingFields(req, o->vary));
  EXPECT_FALSE(o->variant.empty());
  o->response.body = "ok";
  // The hit: Age grows, a 304 for a client that has it, HEAD without the body.
  std::string out;
  bool with_body = false;
  EXPECT_EQ(SerializeHit(*o, req, now + 5000, true, "id1", out, &with_body), 200);
  EXPECT_TRUE(with_body);
  EXPECT_NE(out.find("\r\nAge: 15\r\n"), std::string::npos) << out;
  EXPECT_NE(out.find("Cache-Status: webtier-edge; hit; ttl=45\r\n"), std::string::npos) << out;
  EXPECT_NE(out.find("Content-Length: 2\r\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("X-Hop"), std::string::npos) << out;
  const auto conditional = Get("/p", {{"If-None-Match", "W/\"e\""}});
  EXPECT_EQ(SerializeHit(*o, conditional, now, true, "id1", out, &with_body), 304);
  EXPECT_FALSE(with_body);
  EXPECT_EQ(SerializeHit(*o, Get("/p", {}, http::verb::head), now, false, "", out, &with_body), 200);
  EXPECT_FALSE(with_body);
  EXPECT_NE(out.find("Connection: close\r\n"), std::string::npos);
  std::vector<H2Field> fields;
  std::string storage;
  EXPECT_EQ(HitFields(*o, req, now + 5000, "id2", fields, storage, &with_body), 200);
  EXPECT_TRUE(with_body);
  bool age = false;
  for (const auto& [name, value] : fields) {
    EXPECT_EQ(name, http_syntax::LowerCopy(name));
    if (name == "age") age = value == "15";
  }
  EXPECT_TRUE(age);
}

TEST(EdgeHttpTest, ClientDirectivesCanRefuseAStoredAnswer) {
  FakeClock clock;
  auto o = Object(clock, "/p", 10, 60000);
  o->initial_age_ms = 20000;
  const int64_t now = clock.UnixMillis();
  EXPECT_TRUE(Acceptable(ClassifyRequest(Get("/p", {{"Cache-Control", "max-age=20"}}), false), *o, now));
  EXPECT_FALSE(Acceptable(ClassifyRequest(Get("/p", {{"Cache-Control", "max-age=19"}}), false), *o, now));
  EXPECT_TRUE(Acceptable(ClassifyRequest(Get("/p", {{"Cache-Control", "min-fresh=40"}}), false), *o, now));
  EXPECT_FALSE(Acceptable(ClassifyRequest(Get("/p", {{"Cache-Control", "min-fresh=41"}}), false), *o, now));
}

TEST(EdgeHttpTest, InvalidationsNameUrls) {
  EXPECT_EQ(UrlOfCacheKey("webtier:v2:https://www.example.com/news?a=1"), "/news?a=1");
  EXPECT_EQ(UrlOfCacheKey("webtier:v2:/news"), "/news");
  EXPECT_EQ(UrlOfCacheKey("webtier:v13:http://h:8080/"), "/");
  EXPECT_EQ(UrlOfCacheKey("webtier:v2:http://h/p#123:456"), "/p");
  EXPECT_EQ(UrlOfCacheKey("webtier:lock:webtier:v2:/p"), "");
  EXPECT_EQ(UrlOfCacheKey("webtier:vx:/p"), "");
  EXPECT_EQ(UrlOfCacheKey("webtier:v2:http://h"), "");
  const EdgeRequest post = ClassifyRequest(Get("/items", {}, http::verb::post), false);
  EXPECT_TRUE(InvalidatedBy(Answer({}), post).empty());
  auto req = Get("/items", {}, http::verb::post);
  EdgeRequest r = ClassifyRequest(req, false);
  r.site = "http://www.example.com";
  EXPECT_EQ(InvalidatedBy(Answer({{"Location", "/items/7?b=1&a=2"}}), r), std::vector<std::string>{"/items/7?a=2&b=1"});
  EXPECT_EQ(InvalidatedBy(Answer({{"Content-Location", "http://WWW.example.com/x"}}), r), std::vector<std::string>{"/x"});
  EXPECT_TRUE(InvalidatedBy(Answer({{"Location", "http://other.example/x"}}), r).empty());
  EXPECT_TRUE(InvalidatedBy(Answer({{"Location", "//other.example/x"}}), r).empty());
}

}  // namespace
}  // namespace webtier::balancer::edge
