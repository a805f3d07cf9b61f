// The HTTP rules of an HTTP/2 stream (h2_rules.h): a header block to the
// request a member gets, and a member's head to an HTTP/2 header list.
#include "webtier/balancer/http/h2_rules.h"
#include "webtier/balancer/http/http_rules.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace webtier::balancer {
namespace {

namespace http = boost::beast::http;

using Fields = std::vector<std::pair<std::string, std::string>>;

std::optional<RequestError> Build(const Fields& fields, http::request<http::string_body>& req, size_t max_fields = 100,
                                  size_t max_bytes = 16384) {
  H2RequestHead head(max_fields, max_bytes);
  for (const auto& [n, v] : fields) head.Add(n, v);
  return head.Build(req);
}

const Fields kGet = {{":method", "GET"}, {":scheme", "https"}, {":authority", "example.com"}, {":path", "/a?b"}};

TEST(H2RequestHead, BuildsTheRequestAMemberGets) {
  Fields f = kGet;
  f.insert(f.end(), {{"cookie", "a=1"}, {"accept", "*/*"}, {"cookie", "b=2"}, {"cookie", "c=3"}});
  http::request<http::string_body> req;
  ASSERT_FALSE(Build(f, req));
  EXPECT_EQ(req.method(), http::verb::get);
  EXPECT_EQ(req.target(), "/a?b");
  EXPECT_EQ(req.version(), 11u);
  EXPECT_EQ(req[http::field::host], "example.com");
  EXPECT_EQ(req[http::field::cookie], "a=1; b=2; c=3");
  EXPECT_EQ(req.count(http::field::cookie), 1u);
  EXPECT_EQ(req["accept"], "*/*");
}

TEST(H2RequestHead, HostMustAgreeWithAuthorityAndOneOfThemMustBeThere) {
  http::request<http::string_body> req;
  Fields f = kGet;
  f.push_back({"host", "EXAMPLE.com"});
  EXPECT_FALSE(Build(f, req));  // the same name, told case-insensitively
  http::request<http::string_body> other;
  f = kGet;
  f.push_back({"host", "evil.test"});
  auto error = Build(f, other);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->status, 400);
  http::request<http::string_body> only_host;
  EXPECT_FALSE(Build({{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {"host", "h.test"}}, only_host));
  EXPECT_EQ(only_host[http::field::host], "h.test");
  http::request<http::string_body> neither;
  error = Build({{":method", "GET"}, {":scheme", "http"}, {":path", "/"}}, neither);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->status, 400);
}

TEST(H2RequestHead, RefusesConnectOddSchemesAndOversizedBlocks) {
  http::request<http::string_body> r1, r2, r3, r4;
  auto e = Build({{":method", "CONNECT"}, {":authority", "a:443"}}, r1);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->status, 405);
  e = Build({{":method", "GET"}, {":scheme", "ftp"}, {":authority", "a"}, {":path", "/"}}, r2);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->status, 400);
  Fields big = kGet;
  big.push_back({"x", std::string(20000, 'x')});
  e = Build(big, r3);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->status, 431);
  EXPECT_EQ(e->reason, Rejection::kHeaderTooLarge);
  Fields many = kGet;
  for (int i = 0; i < 5; ++i) many.push_back({"f" + std::to_string(i), "v"});
  e = Build(many, r4, /*max_fields=*/4);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->reason, Rejection::kTooManyFields);
  // Cookie crumbs count as one field.
  http::request<http::string_body> r5;
  Fields crumbs = kGet;
  for (int i = 0; i < 10; ++i) crumbs.push_back({"cookie", "c" + std::to_string(i) + "=1"});
  EXPECT_FALSE(Build(crumbs, r5, 1));
}

// RFC 8441: an extended CONNECT for websocket is the HTTP/1.1 Upgrade GET
// it stands for; another :protocol is refused.
TEST(H2RequestHead, AWebSocketConnectBecomesAnUpgradeRequest) {
  const Fields connect = {{":method", "CONNECT"}, {":protocol", "websocket"}, {":scheme", "https"},
                          {":authority", "example.com"}, {":path", "/chat?room=1"}, {"sec-websocket-version", "13"},
                          {"sec-websocket-protocol", "chat"}, {"origin", "https://example.com"}};
  H2RequestHead head(100, 16384);
  for (const auto& [n, v] : connect) head.Add(n, v);
  EXPECT_TRUE(head.extended_connect());
  http::request<http::string_body> req;
  ASSERT_FALSE(head.Build(req));
  EXPECT_EQ(req.method(), http::verb::get);
  EXPECT_EQ(req.target(), "/chat?room=1");
  EXPECT_EQ(req[http::field::host], "example.com");
  EXPECT_EQ(req[http::field::connection], "Upgrade");
  EXPECT_EQ(req[http::field::upgrade], "websocket");
  EXPECT_EQ(req[http::field::sec_websocket_version], "13");
  EXPECT_EQ(req[http::field::sec_websocket_protocol], "chat");
  EXPECT_TRUE(IsUpgradeRequest(req));
  Fields other = connect;
  other[1].second = "bytestream";
  http::request<http::string_body> r2;
  const auto e = Build(other, r2);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->status, 400);
  H2RequestHead plain(100, 16384);
  for (const auto& [n, v] : kGet) plain.Add(n, v);
  EXPECT_FALSE(plain.extended_connect());
}

TEST(H2RequestHead, CountsTheHeaderListAsRfc9113Does) {
  H2RequestHead head(100, 1 << 20);
  head.Add(":method", "GET");  // 7 + 3 + 32
  head.Add("a", "bc");         // 1 + 2 + 32
  EXPECT_EQ(head.bytes(), 42u + 35u);
}

TEST(H2ResponseFields, DropsConnectionSpecificFieldsAndLowersNames) {
  http::response_header<> res;
  res.result(200);
  res.set("Connection", "keep-alive, X-Hop");
  res.set("Keep-Alive", "timeout=5");
  res.set("X-Hop", "1");
  res.set("Transfer-Encoding", "chunked");
  res.set("Upgrade", "h2c");
  res.set("Content-Type", "text/plain");
  res.set("Content-Length", "5");
  res.set("Set-Cookie", "a=1");
  res.insert("Set-Cookie", "b=2");
  std::vector<H2Field> out;
  H2ResponseFields(res, /*keep_length=*/false, "rid", out);
  const std::vector<H2Field> want = {
      {"content-type", "text/plain"}, {"set-cookie", "a=1"}, {"set-cookie", "b=2"}, {"x-request-id", "rid"}};
  EXPECT_EQ(out, want);
  H2ResponseFields(res, /*keep_length=*/true, "", out);
  EXPECT_EQ(out[1], (H2Field{"content-length", "5"}));
  res.set("X-Request-Id", "member");
  H2ResponseFields(res, true, "rid", out);
  EXPECT_EQ(out.back(), (H2Field{"x-request-id", "member"}));
}

}  // namespace
}  // namespace webtier::balancer
