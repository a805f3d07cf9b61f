// The request-target and Host checks the webnode applies before anything is
// looked up or forwarded (webtier/cache/request_target.h).
#include "webtier/cache/request_target.h"

#include <gtest/gtest.h>

namespace webtier::cache {
namespace {

TEST(AcceptableTarget, OriginFormOnly) {
  for (const char* ok : {"/", "/x", "/a/b?c=d&e", "/@victim/x", "/a:b@c;d=e,f!$'()*+~._-", "/%2F%2Fv/x",
                         "/x?y=/z?w", "/x?"}) {
    EXPECT_TRUE(AcceptableTarget("GET", ok)) << ok;
  }
  for (const char* bad : {"", "@127.0.0.1:9090/api", "//victim/x", "http://victim/x", "https://victim/x",
                          "\\\\victim\\x", "/\\victim", "victim:80", "x/y", "/x y", "/x#frag", "/%zz", "/%2",
                          "/x?%", "/\x01", "/\xc3\xa9", "/x\"", "/<x>", "*"}) {
    EXPECT_FALSE(AcceptableTarget("GET", bad)) << bad;
  }
  EXPECT_TRUE(AcceptableTarget("OPTIONS", "*"));
  EXPECT_FALSE(AcceptableTarget("OPTIONS", "**"));
}

TEST(SchemeFrom, OnlyHttpOrHttps) {
  EXPECT_EQ(SchemeFrom("https"), "https");
  EXPECT_EQ(SchemeFrom(" HTTPS "), "https");
  EXPECT_EQ(SchemeFrom("http"), "http");
  EXPECT_EQ(SchemeFrom(""), "http");
  EXPECT_EQ(SchemeFrom("https, http"), "http");
  EXPECT_EQ(SchemeFrom("ftp"), "http");
  EXPECT_EQ(SchemeFrom("javascript"), "http");
}

TEST(NormalizeHost, LowerCaseAndDefaultPortDropped) {
  EXPECT_EQ(NormalizeHost("Example.COM", "http"), "example.com");
  EXPECT_EQ(NormalizeHost("example.com:80", "http"), "example.com");
  EXPECT_EQ(NormalizeHost("example.com:443", "https"), "example.com");
  EXPECT_EQ(NormalizeHost("example.com:443", "http"), "example.com:443");
  EXPECT_EQ(NormalizeHost("example.com:80", "https"), "example.com:80");
  EXPECT_EQ(NormalizeHost("example.com:0080", "http"), "example.com");
  EXPECT_EQ(NormalizeHost("example.com:", "http"), "example.com");
  EXPECT_EQ(NormalizeHost("example.com:8080", "http"), "example.com:8080");
  EXPECT_EQ(NormalizeHost("10.0.0.1:8080", "http"), "10.0.0.1:8080");
  EXPECT_EQ(NormalizeHost("[::1]:8080", "http"), "[::1]:8080");
  EXPECT_EQ(NormalizeHost("[2001:DB8::1]", "https"), "[2001:db8::1]");
  EXPECT_EQ(NormalizeHost("[v1.fe:80]", "http"), "[v1.fe:80]");
  EXPECT_EQ(NormalizeHost("", "http"), "");
  EXPECT_EQ(NormalizeHost("ex%41mple.com", "http"), "ex%41mple.com");
}

TEST(NormalizeHost, InvalidHostsAreRefused) {
  for (const char* bad : {"evil.example/x", "user@evil.example", "a b", "a\tb", "evil.example\\x", "[::1", "[]",
                          "[::1]x", "[not-ip]", "host:port", "host:65536", "host:-1", "host:1:2", "a\"b", "a<b>",
                          "%zz", "\x7f", "\xc3\xa9.example", "[fe80::1%25eth0]"}) {
    EXPECT_FALSE(NormalizeHost(bad, "http").has_value()) << bad;
  }
  // What follows a NUL inside the brackets is checked too (the fuzzer's find).
  const std::string hidden("[2001:db8::\0, 06 MT\n]:8080", 26);
  EXPECT_FALSE(NormalizeHost(hidden, "http").has_value());
}

TEST(HostList, EntriesAreNormalised) {
  auto list = ParseHostList(" Example.com, api.example.com:80 ,localhost:8080");
  ASSERT_TRUE(list.has_value());
  EXPECT_EQ(*list, (std::vector<std::string>{"example.com", "api.example.com", "localhost:8080"}));
  EXPECT_TRUE(HostAllowed("api.example.com", *list));
  EXPECT_TRUE(HostAllowed("localhost:8080", *list));
  EXPECT_FALSE(HostAllowed("evil.example", *list));
  EXPECT_FALSE(HostAllowed("localhost", *list));
  EXPECT_TRUE(HostAllowed("anything", {}));
  EXPECT_TRUE(ParseHostList("")->empty());
  std::string bad;
  EXPECT_FALSE(ParseHostList("a.example,,b.example", &bad).has_value());
  EXPECT_FALSE(ParseHostList("a.example,b/c", &bad).has_value());
  EXPECT_EQ(bad, "b/c");
}

}  // namespace
}  // namespace webtier::cache
