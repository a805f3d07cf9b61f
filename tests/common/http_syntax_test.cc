// Tokens, lists, hop-by-hop fields and Connection options, as both programs parse them.
#include "webtier/common/http_syntax.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace webtier::http_syntax {
namespace {

TEST(HttpSyntaxTest, TokensAreTheTcharsOfRfc9110) {
  for (std::string_view ok : {"GET", "x-y_z", "!#$%&'*+-.^_`|~", "a1"}) EXPECT_TRUE(IsToken(ok)) << ok;
  for (std::string_view bad : {"", "a b", "a,b", "a:b", "a\"b", "a(b)", "a/b", "a\tb", "\x7f", "caf\xc3\xa9"}) {
    EXPECT_FALSE(IsToken(bad)) << bad;
  }
}

TEST(HttpSyntaxTest, OwsIsSpacesAndTabsOnly) {
  EXPECT_EQ(TrimOws(" \t a b \t "), "a b");
  EXPECT_EQ(TrimOws("\r a"), "\r a");  // CR is not whitespace here: the parser refused it before
  EXPECT_EQ(TrimOws("   "), "");
}

TEST(HttpSyntaxTest, ListElementsAreTrimmedAndEmptyOnesKept) {
  std::vector<std::string> seen;
  ForEachListElement(" a , b,,c ,", [&](std::string_view e) {
    seen.emplace_back(e);
    return true;
  });
  EXPECT_EQ(seen, (std::vector<std::string>{"a", "b", "", "c", ""}));
  seen.clear();
  ForEachListElement("a,b,c", [&](std::string_view e) {
    seen.emplace_back(e);
    return e != "b";
  });
  EXPECT_EQ(seen, (std::vector<std::string>{"a", "b"}));
}

TEST(HttpSyntaxTest, LowerCopyLowersAsciiLettersOnly) {
  EXPECT_EQ(LowerCopy("X-Foo_BAR-9"), "x-foo_bar-9");
  EXPECT_EQ(LowerCopy(""), "");
  EXPECT_EQ(LowerCopy("caf\xc3\x89 @[`{"), "caf\xc3\x89 @[`{");  // bytes outside A-Z unchanged
}

TEST(HttpSyntaxTest, HopByHopFieldsInAnyCase) {
  for (std::string_view name : {"connection", "KEEP-ALIVE", "Proxy-Connection", "te", "Trailer", "transfer-encoding",
                                "Upgrade", "proxy-authenticate", "Proxy-Authorization"}) {
    EXPECT_TRUE(IsHopByHopField(name)) << name;
  }
  for (std::string_view name : {"Content-Length", "Host", "Trailers", "Connection2", "TE ", ""}) {
    EXPECT_FALSE(IsHopByHopField(name)) << name;
  }
}

TEST(HttpSyntaxTest, ConnectionOptionsNameTheListedFields) {
  ConnectionOptions c;
  EXPECT_TRUE(c.empty());
  EXPECT_FALSE(c.Lists("x-a"));
  c.Add("Keep-Alive, X-A");
  c.Add(" ,x-b\t");
  EXPECT_TRUE(c.keep_alive());
  EXPECT_FALSE(c.close());
  EXPECT_FALSE(c.upgrade());
  EXPECT_TRUE(c.Lists("X-a"));
  EXPECT_TRUE(c.Lists("X-B"));
  EXPECT_TRUE(c.Lists("keep-alive"));
  EXPECT_FALSE(c.Lists("x-c"));
  c.Add("CLOSE, upgrade");
  EXPECT_TRUE(c.close());
  EXPECT_TRUE(c.upgrade());
}

// Thousands of tokens, each looked up once per field: the set answers each
// lookup in constant time, so this is linear (quadratic would be 10^10 steps).
TEST(HttpSyntaxTest, ManyTokensAndManyLookupsStayLinear) {
  std::string value;
  for (int i = 0; i < 100000; ++i) value += "x-" + std::to_string(i) + ",";
  ConnectionOptions c;
  c.Add(value);
  int listed = 0;
  for (int i = 0; i < 100000; ++i) listed += c.Lists("X-" + std::to_string(i * 2)) ? 1 : 0;
  EXPECT_EQ(listed, 50000);
}

}  // namespace
}  // namespace webtier::http_syntax
