// CurlOrigin against an in-process upstream (TestOrigin).
#include "webtier/webnode/curl_origin.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include "test_origin.h"

namespace webtier::cache {
namespace {

using namespace std::chrono_literals;
using testing::TestOrigin;

TEST(CurlOriginTest, FetchesStatusHeadersAndBinaryBody) {
  TestOrigin upstream;
  std::string body("a\0b\xff", 4);
  upstream.Set("/bin", {Response{201, {{"Content-Type", "application/x-test"}, {"ETag", "\"v1\""}}, body}});
  CurlOrigin origin(CurlOriginOptions{upstream.url() + "/"});
  Request req;
  req.path = "/bin";
  req.query = "x=1";
  req.headers = {{"Accept", "*/*"}, {"Host", "ignored.example"}, {"Connection", "close"}};
  Response resp;
  ASSERT_TRUE(origin.Fetch(req, &resp).ok());
  EXPECT_EQ(resp.status, 201);
  EXPECT_EQ(resp.body, body);
  EXPECT_EQ(FindHeader(resp.headers, "content-type"), "application/x-test");
  EXPECT_EQ(FindHeader(resp.headers, "ETag"), "\"v1\"");
  EXPECT_FALSE(HasHeader(resp.headers, "Content-Length"));  // framing is not passed on
  EXPECT_EQ(upstream.Hits("/bin"), 1);
}

TEST(CurlOriginTest, TheClientsHostAndAcceptEncodingReachTheOriginUnlessTheHostIsSet) {
  TestOrigin upstream;
  Request req;
  req.path = "/h";
  req.headers = {{"Host", "www.example.org"}, {"Accept-Encoding", "gzip"}, {"Connection", "close, X-Hop"}, {"X-Hop", "1"}};
  Response resp;
  CurlOrigin passthrough(CurlOriginOptions{upstream.url()});
  ASSERT_TRUE(passthrough.Fetch(req, &resp).ok());
  CurlOrigin fixed(CurlOriginOptions{.base_url = upstream.url(), .host = "app.internal"});
  ASSERT_TRUE(fixed.Fetch(req, &resp).ok());
  const auto seen = upstream.Requests("/h");
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(FindHeader(seen[0], "Host"), "www.example.org");
  EXPECT_EQ(FindHeader(seen[0], "Accept-Encoding"), "gzip");
  EXPECT_FALSE(HasHeader(seen[0], "X-Hop"));  // named in Connection: hop-by-hop
  EXPECT_EQ(FindHeader(seen[1], "Host"), "app.internal");
  EXPECT_EQ(FindHeader(seen[1], "Accept-Encoding"), "gzip");
}

TEST(CurlOriginTest, DefaultAnswerAndErrorStatusesAreOk) {
  TestOrigin upstream;
  upstream.Set("/missing", {Response{404, {}, "nope"}});
  CurlOrigin origin(CurlOriginOptions{upstream.url()});
  Request req;
  req.path = "/hello";
  req.query = "a=b";
  Response resp;
  ASSERT_TRUE(origin.Fetch(req, &resp).ok());
  EXPECT_EQ(resp.status, 200);
  EXPECT_EQ(resp.body, "origin:/hello?a=b");
  req.path = "/missing";
  ASSERT_TRUE(origin.Fetch(req, &resp).ok());
  EXPECT_EQ(resp.status, 404);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(origin.Fetch(req, &resp).ok());  // reused handles
}

TEST(CurlOriginTest, PostAndHeadAreForwarded) {
  TestOrigin upstream;
  CurlOrigin origin(CurlOriginOptions{upstream.url()});
  Request post;
  post.method = "POST";
  post.path = "/submit";
  post.body = "payload";
  Response resp;
  ASSERT_TRUE(origin.Fetch(post, &resp).ok());
  EXPECT_EQ(resp.status, 200);
  Request head;
  head.method = "HEAD";
  head.path = "/submit";
  ASSERT_TRUE(origin.Fetch(head, &resp).ok());
  EXPECT_TRUE(resp.body.empty());
  // The representation's length, for the HEAD answer (a GET gets "origin:/submit").
  EXPECT_EQ(FindHeader(resp.headers, "Content-Length"), "14");
  EXPECT_EQ(upstream.Hits("/submit"), 2);
}

TEST(CurlOriginTest, RefusedIsUnavailableAndSlowIsTimeout) {
  // A port nobody listens on: bind, read the port, close.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  CurlOrigin refused(CurlOriginOptions{"http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port))});
  Request req;
  req.path = "/";
  Response resp;
  EXPECT_EQ(refused.Fetch(req, &resp).code(), ErrorCode::kUnavailable);

  TestOrigin upstream;
  upstream.Set("/slow", {Response{200, {}, "late"}, 1000});
  CurlOriginOptions options{upstream.url()};
  options.timeout = 200ms;
  CurlOrigin slow(options);
  req.path = "/slow";
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(slow.Fetch(req, &resp).code(), ErrorCode::kTimeout);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 900ms);
}

}  // namespace
}  // namespace webtier::cache
