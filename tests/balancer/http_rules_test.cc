// Unit tests of the request framing checks and header rewriting, plus the state file.
#include <gtest/gtest.h>

#include <fstream>

#include <boost/beast/http.hpp>

#include "webtier/balancer/http_rules.h"
#include "webtier/balancer/state_file.h"
#include "webtier/testing/harness.h"

namespace webtier::balancer {
namespace {

namespace http = boost::beast::http;

// Parses a request as the proxy does; returns the Beast error (if any) and
// the framing verdict.
std::string Verdict(const std::string& raw) {
  http::request_parser<http::string_body> p;
  boost::beast::error_code ec;
  p.eager(true);
  p.put(boost::asio::buffer(raw), ec);
  if (ec && ec != http::error::need_more) return "beast:" + ec.message();
  std::string_view why = CheckRequestFraming(p.get());
  return std::string(why);
}

TEST(CheckRequestFraming, AcceptsOrdinaryRequests) {
  EXPECT_EQ(Verdict("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), "");
  EXPECT_EQ(Verdict("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"), "");
  EXPECT_EQ(Verdict("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"), "");
  EXPECT_EQ(Verdict("GET / HTTP/1.0\r\n\r\n"), "");
}

TEST(CheckRequestFraming, RejectsSmugglingShapes) {
  EXPECT_NE(Verdict("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"), "");
  EXPECT_NE(Verdict("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc"), "");
  EXPECT_NE(Verdict("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc"), "");
  EXPECT_NE(Verdict("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"), "");
  EXPECT_NE(Verdict("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"), "");
  EXPECT_NE(Verdict("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\nContent-Length: 3\r\n\r\nabc"), "");
  EXPECT_NE(Verdict("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"), "");
  EXPECT_NE(Verdict("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), "");
  EXPECT_NE(Verdict("GET / HTTP/1.1\r\n\r\n"), "");
  EXPECT_NE(Verdict("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), "");
}

TEST(StripHopByHop, RemovesConnectionScopedFields) {
  http::fields f;
  f.set(http::field::connection, "keep-alive, X-Secret, Content-Length");
  f.set("X-Secret", "1");
  f.set(http::field::keep_alive, "timeout=5");
  f.set("Proxy-Authorization", "Basic x");
  f.set("Proxy-Connection", "keep-alive");
  f.set(http::field::te, "trailers");
  f.set(http::field::trailer, "X");
  f.set(http::field::upgrade, "websocket");
  f.set(http::field::content_length, "3");
  f.set("X-Kept", "yes");
  StripHopByHop(f);
  EXPECT_EQ(f.count(http::field::connection), 0u);
  EXPECT_EQ(f.count("X-Secret"), 0u);
  EXPECT_EQ(f.count(http::field::keep_alive), 0u);
  EXPECT_EQ(f.count("Proxy-Authorization"), 0u);
  EXPECT_EQ(f.count("Proxy-Connection"), 0u);
  EXPECT_EQ(f.count(http::field::te), 0u);
  EXPECT_EQ(f.count(http::field::trailer), 0u);
  EXPECT_EQ(f.count(http::field::upgrade), 0u);
  EXPECT_EQ(f[http::field::content_length], "3");  // framing is never dropped by Connection
  EXPECT_EQ(f["X-Kept"], "yes");
}

TEST(RewriteRequestForUpstream, ForwardingHeaders) {
  http::request<http::string_body> req{http::verb::post, "/x", 11};
  req.set(http::field::host, "h");
  req.set(http::field::transfer_encoding, "chunked");
  req.set("X-Forwarded-For", "10.0.0.1");
  req.body() = "hello";
  RewriteRequestForUpstream(req, "127.0.0.1", "abc");
  EXPECT_EQ(req["X-Forwarded-For"], "10.0.0.1, 127.0.0.1");
  EXPECT_EQ(req["X-Forwarded-Proto"], "http");
  EXPECT_EQ(req["X-Request-Id"], "abc");
  EXPECT_EQ(req.count(http::field::transfer_encoding), 0u);
  EXPECT_EQ(req[http::field::content_length], "5");

  http::request<http::string_body> keep{http::verb::get, "/", 10};
  keep.set("X-Request-Id", "given");
  RewriteRequestForUpstream(keep, "::1", "new");
  EXPECT_EQ(keep["X-Request-Id"], "given");
  EXPECT_EQ(keep["X-Forwarded-For"], "::1");
  EXPECT_EQ(keep.count(http::field::content_length), 0u);
  EXPECT_EQ(keep.version(), 11u);
}

TEST(IsIdempotent, FollowsRfc9110) {
  EXPECT_TRUE(IsIdempotent(http::verb::get));
  EXPECT_TRUE(IsIdempotent(http::verb::put));
  EXPECT_TRUE(IsIdempotent(http::verb::delete_));
  EXPECT_FALSE(IsIdempotent(http::verb::post));
  EXPECT_FALSE(IsIdempotent(http::verb::patch));
}

TEST(NewRequestId, IsHexAndUnique) {
  auto a = NewRequestId(), b = NewRequestId();
  EXPECT_EQ(a.size(), 32u);
  EXPECT_NE(a, b);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
}

TEST(StateFile, RoundTripsAndSkipsInvalidEntries) {
  testing::TempDir dir("balancer-state");
  const std::string path = dir.path() + "/pool.json";
  std::vector<MemberRecord> in(2);
  in[0].key = "member_0000000001";
  in[0].member = {.id = "a", .host = "127.0.0.1", .port = 8081, .zone = "z", .weight = 50};
  in[1].key = "member_0000000002";
  in[1].member = {.id = "b", .host = "::1", .port = 8082};
  ASSERT_TRUE(SaveStateFile(path, in).ok());
  std::vector<MemberRecord> out;
  ASSERT_TRUE(LoadStateFile(path, &out).ok());
  EXPECT_EQ(out, in);

  int invalid = 0;
  ASSERT_TRUE(ParseState(R"({"members":[{"znode":"m1","member":{"serviceEndpoint":{"host":"h","port":1},"status":"ALIVE"}},
                           {"znode":"m2","member":{"serviceEndpoint":{"host":"h","port":70000},"status":"ALIVE"}},
                           {"member":{}}, 7]})",
                         &out, &invalid)
                  .ok());
  EXPECT_EQ(out.size(), 1u);
  EXPECT_EQ(invalid, 3);
  EXPECT_EQ(ParseState("not json", &out, nullptr).code(), ErrorCode::kCorrupt);
  EXPECT_EQ(LoadStateFile(dir.path() + "/missing.json", &out).code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace webtier::balancer
