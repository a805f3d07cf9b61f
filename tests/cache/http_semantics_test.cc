// The pure RFC 9111 pieces: HTTP-date, freshness and age, CDN-Cache-Control,
// Vary, conditionals.
#include <gtest/gtest.h>

#include "webtier/cache/cache_control.h"
#include "webtier/cache/conditional.h"
#include "webtier/cache/freshness.h"
#include "webtier/cache/http_date.h"
#include "webtier/cache/vary.h"

namespace webtier::cache {
namespace {

constexpr int64_t kNow = 1'700'000'000;  // Unix seconds
constexpr int64_t kNowMs = kNow * 1000;

TEST(HttpDateTest, ParsesTheThreeFormatsStrictly) {
  EXPECT_EQ(ParseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
  EXPECT_EQ(ParseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT", kNow), 784111777);
  EXPECT_EQ(ParseHttpDate("Sun Nov  6 08:49:37 1994"), 784111777);
  EXPECT_EQ(ParseHttpDate("THU, 18 AUG 2050 02:01:18 gMT"), ParseHttpDate("Thu, 18 Aug 2050 02:01:18 GMT"));
  for (const char* bad : {"Thu, 18 Aug 2050 02:01:18 UTC", "Thu, 18 Aug 50 02:01:18 GMT", "Thu 18 Aug 2050 02:01:18 GMT",
                          "Thu, 18  Aug  2050 02:01:18 GMT", "Thu, 18-Aug-2050 02:01:18 GMT",
                          "Thu, 18 Aug 2050 2:01:18 GMT", "0", "yesterday", ""}) {
    EXPECT_FALSE(ParseHttpDate(bad).has_value()) << bad;
  }
}

TEST(HttpDateTest, FormatsImfFixdate) {
  EXPECT_EQ(FormatHttpDate(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(FormatHttpDate(0), "Thu, 01 Jan 1970 00:00:00 GMT");
  EXPECT_EQ(ParseHttpDate(FormatHttpDate(kNow)), kNow);
}

Response With(Headers headers, int status = 200) { return Response{status, std::move(headers), "body"}; }

TEST(FreshnessTest, LifetimeFromSMaxAgeThenMaxAgeThenExpires) {
  FreshnessOptions o;
  const std::string date = FormatHttpDate(kNow);
  EXPECT_EQ(Assess(With({{"Cache-Control", "max-age=10, s-maxage=30"}}), kNowMs, kNowMs, o).lifetime_ms, 30'000);
  EXPECT_EQ(Assess(With({{"Cache-Control", "max-age=10"}}), kNowMs, kNowMs, o).lifetime_ms, 10'000);
  Freshness exp = Assess(With({{"Date", date}, {"Expires", FormatHttpDate(kNow + 100)}}), kNowMs, kNowMs, o);
  EXPECT_TRUE(exp.storable);
  EXPECT_EQ(exp.lifetime_ms, 100'000);
  // An invalid Expires means already expired: not stored (no validator).
  EXPECT_FALSE(Assess(With({{"Date", date}, {"Expires", "0"}}), kNowMs, kNowMs, o).storable);
  // s-maxage forbids serving stale; so do must-revalidate and proxy-revalidate.
  EXPECT_TRUE(Assess(With({{"Cache-Control", "s-maxage=5"}}), kNowMs, kNowMs, o).no_stale);
  EXPECT_TRUE(Assess(With({{"Cache-Control", "max-age=5, must-revalidate"}}), kNowMs, kNowMs, o).no_stale);
  EXPECT_FALSE(Assess(With({{"Cache-Control", "max-age=5"}}), kNowMs, kNowMs, o).no_stale);
}

TEST(FreshnessTest, HeuristicOnlyFromLastModifiedAndCappedByCacheTtl) {
  FreshnessOptions o;
  o.heuristic_cap_s = 60;
  const std::string date = FormatHttpDate(kNow);
  Freshness day = Assess(With({{"Date", date}, {"Last-Modified", FormatHttpDate(kNow - 86400)}}), kNowMs, kNowMs, o);
  EXPECT_TRUE(day.storable);
  EXPECT_TRUE(day.heuristic);
  EXPECT_EQ(day.lifetime_ms, 60'000);
  Freshness recent = Assess(With({{"Date", date}, {"Last-Modified", FormatHttpDate(kNow - 100)}}), kNowMs, kNowMs, o);
  EXPECT_EQ(recent.lifetime_ms, 10'000);
  EXPECT_FALSE(Assess(With({{"Date", date}}), kNowMs, kNowMs, o).storable);
  // Not for a status that is not heuristically cacheable, unless public.
  EXPECT_FALSE(Assess(With({{"Last-Modified", FormatHttpDate(kNow - 86400)}}, 403), kNowMs, kNowMs, o).storable);
  EXPECT_TRUE(Assess(With({{"Last-Modified", FormatHttpDate(kNow - 86400)}, {"Cache-Control", "public"}}, 599),
                     kNowMs, kNowMs, o).storable);
  // Explicit freshness, even stale at once, is never overridden by --cache-ttl.
  Freshness negative = Assess(With({{"Cache-Control", "max-age=-3600"}, {"Last-Modified", FormatHttpDate(kNow - 86400)}}),
                              kNowMs, kNowMs, o);
  EXPECT_EQ(negative.lifetime_ms, 0);
  EXPECT_FALSE(negative.heuristic);
}

TEST(FreshnessTest, CorrectedInitialAgeCountsAgeDateAndDelay) {
  FreshnessOptions o;
  // Age 30 plus a 2 s response delay.
  Freshness aged = Assess(With({{"Age", "30"}, {"Date", FormatHttpDate(kNow)}}), kNowMs - 2000, kNowMs, o);
  EXPECT_EQ(aged.initial_age_ms, 32'000);
  // A Date 100 s in the past: the apparent age wins.
  EXPECT_EQ(Assess(With({{"Date", FormatHttpDate(kNow - 100)}}), kNowMs, kNowMs, o).initial_age_ms, 100'000);
  // Invalid Age values are ignored; the first member of the first line counts.
  for (const char* bad : {"abc", "-7200", "7200.0"}) {
    EXPECT_EQ(Assess(With({{"Age", bad}}), kNowMs, kNowMs, o).initial_age_ms, 0) << bad;
  }
  EXPECT_EQ(Assess(With({{"Age", "7200, 0"}}), kNowMs, kNowMs, o).initial_age_ms, 7'200'000);
  EXPECT_EQ(Assess(With({{"Age", "0"}, {"Age", "7200"}}), kNowMs, kNowMs, o).initial_age_ms, 0);
}

TEST(FreshnessTest, StorabilityFollowsTheDirectives) {
  FreshnessOptions o;
  EXPECT_FALSE(Assess(With({{"Cache-Control", "max-age=60, no-store"}}), kNowMs, kNowMs, o).storable);
  EXPECT_FALSE(Assess(With({{"Cache-Control", "max-age=60, private"}}), kNowMs, kNowMs, o).storable);
  EXPECT_FALSE(Assess(With({{"Cache-Control", "max-age=60"}}, 206), kNowMs, kNowMs, o).storable);
  // no-cache: stored to be revalidated, only when it can be (a validator).
  Freshness nc = Assess(With({{"Cache-Control", "no-cache, max-age=60"}, {"ETag", "\"a\""}}), kNowMs, kNowMs, o);
  EXPECT_TRUE(nc.storable);
  EXPECT_TRUE(nc.always_revalidate);
  EXPECT_FALSE(Assess(With({{"Cache-Control", "no-cache"}}), kNowMs, kNowMs, o).storable);
  // Qualified private / no-cache: stored without the listed fields.
  Freshness listed = Assess(With({{"Cache-Control", "max-age=60, private=\"X-A\", no-cache=X-B"}}), kNowMs, kNowMs, o);
  EXPECT_TRUE(listed.storable);
  EXPECT_EQ(listed.drop_fields, (std::vector<std::string>{"X-B", "X-A"}));
}

TEST(CdnCacheControlTest, TakesPrecedenceWhenValidAndIsIgnoredWhenNot) {
  bool targeted = false;
  CacheControl cc = EffectiveCacheControl({{"Cache-Control", "no-store"}, {"CDN-Cache-Control", "max-age=600"}}, &targeted);
  EXPECT_TRUE(targeted);
  EXPECT_FALSE(cc.no_store);
  EXPECT_EQ(cc.max_age, 600);
  for (const char* invalid : {"max-age=10000, &&&&&", "Max-Age=5"}) {
    CacheControl fallback = EffectiveCacheControl({{"Cache-Control", "no-store"}, {"CDN-Cache-Control", invalid}}, &targeted);
    EXPECT_FALSE(targeted) << invalid;
    EXPECT_TRUE(fallback.no_store) << invalid;
  }
  // A directive of the wrong type is ignored, the field still wins.
  CacheControl wrong = EffectiveCacheControl({{"Cache-Control", "max-age=5"}, {"CDN-Cache-Control", "max-age=\"10000\""}}, &targeted);
  EXPECT_TRUE(targeted);
  EXPECT_FALSE(wrong.max_age.has_value());
  EXPECT_TRUE(ParseCdnCacheControl("no-store, private").value().no_store);
}

TEST(VaryTest, EveryLineCountsAndValuesAreNormalised) {
  Vary v = ParseVary({{"Vary", "Accept-Encoding"}, {"Vary", "accept-language, X-A"}});
  EXPECT_EQ(v.names, (std::vector<std::string>{"accept-encoding", "accept-language", "x-a"}));
  EXPECT_FALSE(v.star);
  EXPECT_TRUE(ParseVary({{"Vary", "foo"}, {"Vary", "*"}}).star);
  EXPECT_TRUE(ParseVary({}).empty());

  Vary lang = ParseVary({{"Vary", "Accept-Language, Foo"}});
  const std::string de = SelectingFields(lang, {{"Accept-Language", "de"}, {"Foo", "1"}});
  EXPECT_NE(de, SelectingFields(lang, {{"Accept-Language", "fr"}, {"Foo", "1"}}));
  EXPECT_EQ(SelectingFields(lang, {{"Accept-Language", "en, de"}, {"Foo", "1,2"}}),
            SelectingFields(lang, {{"accept-language", " De ,eN"}, {"Foo", "1"}, {"Foo", " 2 "}}));
  // Absent differs from empty.
  EXPECT_NE(SelectingFields(lang, {{"Accept-Language", "de"}}), SelectingFields(lang, {{"Accept-Language", "de"}, {"Foo", ""}}));
  EXPECT_NE(VariantKey("k", 1, "a"), VariantKey("k", 2, "a"));
  EXPECT_EQ(VariantKey("k", 1, "a").rfind("k#", 0), 0u);
}

TEST(ConditionalTest, ClientConditionalsAgainstAFullResponse) {
  Response r = With({{"ETag", "W/\"v1\""}, {"Last-Modified", FormatHttpDate(kNow - 100)}, {"Content-Type", "text/plain"},
                     {"Cache-Control", "max-age=60"}});
  auto req = [](Headers h) { return Request{"GET", "/", "", "", std::move(h), ""}; };
  EXPECT_TRUE(ClientHasIt(req({{"If-None-Match", "\"v0\", \"v1\""}}), r));  // weak comparison
  EXPECT_TRUE(ClientHasIt(req({{"If-None-Match", "*"}}), r));
  EXPECT_FALSE(ClientHasIt(req({{"If-None-Match", "\"v2\""}}), r));
  EXPECT_TRUE(ClientHasIt(req({{"If-Modified-Since", FormatHttpDate(kNow)}}), r));
  EXPECT_FALSE(ClientHasIt(req({{"If-Modified-Since", FormatHttpDate(kNow - 200)}}), r));
  EXPECT_FALSE(ClientHasIt(req({{"If-Modified-Since", "garbage"}}), r));
  // If-None-Match wins over If-Modified-Since.
  EXPECT_FALSE(ClientHasIt(req({{"If-None-Match", "\"v2\""}, {"If-Modified-Since", FormatHttpDate(kNow)}}), r));
  Response nm = NotModifiedFor(r);
  EXPECT_EQ(nm.status, 304);
  EXPECT_TRUE(nm.body.empty());
  EXPECT_FALSE(HasHeader(nm.headers, "Content-Type"));
  EXPECT_EQ(FindHeader(nm.headers, "ETag"), "W/\"v1\"");
}

TEST(ConditionalTest, A304UpdatesTheStoredFieldsButNotTheLength) {
  Response stored = With({{"ETag", "\"a\""}, {"Cache-Control", "max-age=1"}, {"Content-Length", "4"}, {"X-Old", "1"}});
  UpdateFrom304(&stored, With({{"Cache-Control", "max-age=3600"}, {"Content-Length", "0"}, {"X-New", "2"}}, 304));
  EXPECT_EQ(FindHeader(stored.headers, "Cache-Control"), "max-age=3600");
  EXPECT_EQ(FindHeader(stored.headers, "Content-Length"), "4");
  EXPECT_EQ(FindHeader(stored.headers, "X-Old"), "1");
  EXPECT_EQ(FindHeader(stored.headers, "X-New"), "2");
  EXPECT_EQ(stored.body, "body");
}

TEST(ConditionalTest, TheOriginRequestCarriesNoOneClientsRangeConditionalsOrCredentials) {
  Request client{"GET", "/p", "a=1", "h", {{"Range", "bytes=0-1"}, {"If-None-Match", "\"x\""}, {"If-Modified-Since", "x"},
                                           {"Authorization", "Bearer t"}, {"Cookie", "c=1"}, {"Accept-Language", "de"}}, ""};
  Request plain = OriginRequestFor(client, nullptr);
  EXPECT_EQ(plain.headers, (Headers{{"Accept-Language", "de"}}));
  EXPECT_EQ(plain.path, "/p");
  EXPECT_EQ(plain.query, "a=1");
  Response stored = With({{"ETag", "\"s\""}, {"Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT"}});
  Request validating = OriginRequestFor(client, &stored);
  EXPECT_EQ(FindHeader(validating.headers, "If-None-Match"), "\"s\"");
  EXPECT_EQ(FindHeader(validating.headers, "If-Modified-Since"), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_FALSE(HasHeader(validating.headers, "Range"));
}

}  // namespace
}  // namespace webtier::cache
