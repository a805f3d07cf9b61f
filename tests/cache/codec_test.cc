// The pure pieces: record codec, Cache-Control parsing, cache keys, routes.
#include <gtest/gtest.h>

#include <random>

#include "webtier/cache/cache_control.h"
#include "webtier/cache/cache_key.h"
#include "webtier/cache/record.h"
#include "webtier/cache/routes.h"

namespace webtier::cache {
namespace {

Record Sample() {
  Record r;
  r.response.status = 203;
  r.response.headers = {{"Content-Type", "application/octet-stream"}, {"ETag", "\"abc\""}};
  r.response.body = std::string("bin\0ary\xff\x00 body", 15);
  r.stored_at_ms = 1'700'000'000'123;
  r.ttl_ms = 60'000;
  r.swr_ms = 30'000;
  r.sie_ms = 300'000;
  return r;
}

TEST(RecordTest, RoundTripsBinaryBodies) {
  Record in = Sample();
  Record out;
  ASSERT_TRUE(DecodeRecord(EncodeRecord(in), &out).ok());
  EXPECT_EQ(out.response.status, 203);
  EXPECT_EQ(out.response.headers, in.response.headers);
  EXPECT_EQ(out.response.body, in.response.body);
  EXPECT_EQ(out.response.body.size(), 15u);
  EXPECT_EQ(out.stored_at_ms, in.stored_at_ms);
  EXPECT_EQ(out.ttl_ms, in.ttl_ms);
  EXPECT_EQ(out.swr_ms, in.swr_ms);
  EXPECT_EQ(out.sie_ms, in.sie_ms);
}

TEST(RecordTest, EveryFlippedByteIsDetected) {
  const std::string bytes = EncodeRecord(Sample());
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string bad = bytes;
    bad[i] = static_cast<char>(bad[i] ^ 0x5a);
    Record out;
    // Byte 3 is the format version: another version is a miss, not corruption.
    EXPECT_EQ(DecodeRecord(bad, &out).code(), i == 3 ? ErrorCode::kNotFound : ErrorCode::kCorrupt) << "byte " << i;
  }
}

// A record as format version 1 wrote it: no age, keep, flags, generation or variant.
std::string VersionOneRecord() {
  std::string out = "WTC";
  out.push_back(1);
  auto put = [&](uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  };
  put(200, 2);
  for (int64_t v : {int64_t{1'700'000'000'000}, int64_t{60'000}, int64_t{30'000}, int64_t{300'000}}) put(v, 8);
  put(1, 4);
  put(12, 4);
  out += "Content-Type";
  put(10, 4);
  out += "text/plain";
  put(2, 4);
  out += "v1";
  put(Crc32(out), 4);
  return out;
}

TEST(RecordTest, ARecordOfTheFormerVersionIsAMissNotCorrupt) {
  Record out;
  Status s = DecodeRecord(VersionOneRecord(), &out);
  EXPECT_EQ(s.code(), ErrorCode::kNotFound) << s.ToString();
}

TEST(RecordTest, TruncatedGarbageAndOtherVersionsAreCorrupt) {
  const std::string bytes = EncodeRecord(Sample());
  Record out;
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_EQ(DecodeRecord(bytes.substr(0, n), &out).code(), ErrorCode::kCorrupt) << n;
  }
  EXPECT_EQ(DecodeRecord("not a record at all", &out).code(), ErrorCode::kCorrupt);
  std::string v3 = bytes;
  v3[3] = 3;
  EXPECT_EQ(DecodeRecord(v3, &out).code(), ErrorCode::kNotFound);
}

TEST(RecordTest, RandomBytesNeverCrashTheDecoder) {
  // A poor man's fuzzer (run under ASan/UBSan in CI): mutated, truncated and
  // extended encodings, with and without a recomputed checksum.
  std::mt19937 rng(42);
  const std::string good = EncodeRecord(Sample());
  for (int i = 0; i < 20000; ++i) {
    std::string bytes = good;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      switch (rng() % 3) {
        case 0: bytes[rng() % bytes.size()] = static_cast<char>(rng()); break;
        case 1: bytes.resize(rng() % (bytes.size() + 1)); break;
        case 2: bytes.insert(rng() % (bytes.size() + 1), 1, static_cast<char>(rng())); break;
      }
      if (bytes.empty()) bytes = "W";
    }
    if (i % 2 == 0 && bytes.size() > 4) {  // make the checksum match, so the parser itself is exercised
      const uint32_t crc = Crc32(std::string_view(bytes).substr(0, bytes.size() - 4));
      for (int b = 0; b < 4; ++b) bytes[bytes.size() - 4 + b] = static_cast<char>((crc >> (8 * b)) & 0xFF);
    }
    Record out;
    Status s = DecodeRecord(bytes, &out);
    EXPECT_TRUE(s.ok() || s.code() == ErrorCode::kCorrupt || s.code() == ErrorCode::kNotFound);
  }
}

TEST(RecordTest, FreshnessWindows) {
  Record r = Sample();  // ttl 60s, swr 30s, sie 300s
  const int64_t t0 = r.stored_at_ms;
  EXPECT_EQ(r.At(t0), Record::Freshness::kFresh);
  EXPECT_EQ(r.At(t0 + 59'999), Record::Freshness::kFresh);
  EXPECT_EQ(r.At(t0 + 60'000), Record::Freshness::kStaleRevalidate);
  EXPECT_EQ(r.At(t0 + 90'000), Record::Freshness::kStaleIfError);
  EXPECT_EQ(r.At(t0 + 360'000), Record::Freshness::kExpired);
  EXPECT_EQ(r.AgeSeconds(t0 + 61'500), 61);
  EXPECT_EQ(r.AgeSeconds(t0 - 5'000), 0);  // clock skew between nodes
  EXPECT_EQ(r.RetainMs(), 360'000);
}

TEST(RecordTest, Crc32MatchesZlib) { EXPECT_EQ(Crc32("123456789"), 0xCBF43926u); }

TEST(CacheControlTest, ParsesDirectives) {
  CacheControl cc = ParseCacheControl("Public, MAX-AGE=60, s-maxage=\"120\", stale-while-revalidate=5,stale-if-error=7");
  EXPECT_TRUE(cc.is_public);
  EXPECT_EQ(cc.max_age, 60);
  EXPECT_EQ(cc.s_maxage, 120);
  EXPECT_EQ(cc.stale_while_revalidate, 5);
  EXPECT_EQ(cc.stale_if_error, 7);
  EXPECT_FALSE(cc.no_store);

  CacheControl ns = ParseCacheControl("no-store");
  EXPECT_TRUE(ns.no_store);
  EXPECT_TRUE(ParseCacheControl("private, max-age=10").is_private);
  EXPECT_TRUE(ParseCacheControl("no-cache").no_cache);
  // A present but malformed max-age makes the response stale at once (RFC 9111 4.2.1).
  EXPECT_EQ(ParseCacheControl("max-age=abc").max_age, 0);
  EXPECT_EQ(ParseCacheControl("max-age=-1").max_age, 0);
  EXPECT_EQ(ParseCacheControl("max-age='3600'").max_age, 0);
  EXPECT_EQ(ParseCacheControl("max-age=003600").max_age, 3600);
  EXPECT_EQ(ParseCacheControl("max-age=99999999999").max_age, int64_t{1} << 31);
  EXPECT_EQ(ParseCacheControl("max-age=1800, max-age=1").max_age, 1800);  // the first one
  // A comma inside quotes does not split; quoted strings are not directives.
  EXPECT_EQ(ParseCacheControl("extension=\"max-age=3600, x\", max-age=1").max_age, 1);
  CacheControl fields = ParseCacheControl("no-cache=\"Set-Cookie, X-A\", private=X-B, must-revalidate");
  EXPECT_FALSE(fields.no_cache);
  EXPECT_EQ(fields.no_cache_fields, (std::vector<std::string>{"Set-Cookie", "X-A"}));
  EXPECT_EQ(fields.private_fields, (std::vector<std::string>{"X-B"}));
  EXPECT_TRUE(fields.must_revalidate);
  EXPECT_FALSE(ParseCacheControl("").max_age.has_value());
}

TEST(CacheKeyTest, NormalizesTheQuery) {
  EXPECT_EQ(NormalizeQuery("b=2&a=1"), "a=1&b=2");
  EXPECT_EQ(NormalizeQuery("&a=1&&b=2&"), "a=1&b=2");
  EXPECT_EQ(NormalizeQuery(""), "");
  EXPECT_EQ(CacheKey("/api/sleep/300", "k=1"), CacheKey("/api/sleep/300", "k=1&"));
  EXPECT_NE(CacheKey("/api/sleep/300", "k=1"), CacheKey("/api/sleep/300", "k=2"));
  EXPECT_NE(CacheKey("/api/sleep/300", ""), CacheKey("/api/sleep/300", "k=1"));
  EXPECT_EQ(CacheKey("/x", ""), "webtier:v2:/x");
  EXPECT_EQ(CacheKey("/x", "b&a"), "webtier:v2:/x?a&b");
  EXPECT_EQ(CacheKey("/x", "", SiteOf("https", "example.org")), "webtier:v2:https://example.org/x");
  EXPECT_NE(CacheKey("/x", "", SiteOf("http", "example.org")), CacheKey("/x", "", SiteOf("https", "example.org")));
  EXPECT_NE(CacheKey("/x", "", SiteOf("http", "a.example")), CacheKey("/x", "", SiteOf("http", "b.example")));
  EXPECT_NE(LockKey(CacheKey("/x", "")), CacheKey("/x", ""));
}

TEST(RouteTableTest, LongestPrefixAndExactRoutes) {
  RouteTable t;
  t.Add(Route{"/api/", "/api", {}, nullptr});
  t.Add(Route{"/api/primes/", "/api/primes", {}, nullptr});
  t.Add(Route{"/api/time", "/api/time", {}, nullptr});
  ASSERT_NE(t.Match("/api/primes/10"), nullptr);
  EXPECT_EQ(t.Match("/api/primes/10")->label, "/api/primes");
  EXPECT_EQ(t.Match("/api/other")->label, "/api");
  EXPECT_EQ(t.Match("/api/time")->label, "/api/time");
  EXPECT_EQ(t.Match("/api/timex")->label, "/api");
  EXPECT_EQ(t.Match("/nope"), nullptr);
}

}  // namespace
}  // namespace webtier::cache
