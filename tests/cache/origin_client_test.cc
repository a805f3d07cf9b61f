// The two --origin clients (libcurl for https://, the webnode's own for
// http://) against an in-process upstream (TestOrigin): both must behave the
// same. The own client's framing and connection handling against hostile
// origins: http_origin_test.cc.
#include "webtier/webnode/curl_origin.h"
#include "webtier/webnode/http_origin.h"

#include <gtest/gtest.h>

#include "test_origin.h"
#include "webtier/testing/harness.h"

namespace webtier::cache {
namespace {

using namespace std::chrono_literals;
using testing::TestOrigin;

template <typename Client>
struct Options;
template <>
struct Options<CurlOrigin> {
  using Type = CurlOriginOptions;
};
template <>
struct Options<HttpOrigin> {
  using Type = HttpOriginOptions;
};

template <typename Client>
class OriginClientTest : public ::testing::Test {
 protected:
  using Opts = typename Options<Client>::Type;
};
using Clients = ::testing::Types<CurlOrigin, HttpOrigin>;
TYPED_TEST_SUITE(OriginClientTest, Clients);

TYPED_TEST(OriginClientTest, FetchesStatusHeadersAndBinaryBody) {
  TestOrigin upstream;
  std::string body("a\0b\xff", 4);
  upstream.Set("/bin", {Response{201, {{"Content-Type", "application/x-test"}, {"ETag", "\"v1\""}}, body}});
  TypeParam origin(typename TestFixture::Opts{upstream.url() + "/"});
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

TYPED_TEST(OriginClientTest, TheClientsHostAndAcceptEncodingReachTheOriginUnlessTheHostIsSet) {
  TestOrigin upstream;
  Request req;
  req.path = "/h";
  req.headers = {{"Host", "www.example.org"}, {"Accept-Encoding", "gzip"}, {"Connection", "close, X-Hop"}, {"X-Hop", "1"}};
  Response resp;
  TypeParam passthrough(typename TestFixture::Opts{upstream.url()});
  ASSERT_TRUE(passthrough.Fetch(req, &resp).ok());
  TypeParam fixed(typename TestFixture::Opts{.base_url = upstream.url(), .host = "app.internal"});
  ASSERT_TRUE(fixed.Fetch(req, &resp).ok());
  const auto seen = upstream.Requests("/h");
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(FindHeader(seen[0], "Host"), "www.example.org");
  EXPECT_EQ(FindHeader(seen[0], "Accept-Encoding"), "gzip");
  EXPECT_FALSE(HasHeader(seen[0], "X-Hop"));  // named in Connection: hop-by-hop
  EXPECT_EQ(FindHeader(seen[1], "Host"), "app.internal");
  EXPECT_EQ(FindHeader(seen[1], "Accept-Encoding"), "gzip");
}

TYPED_TEST(OriginClientTest, DefaultAnswerAndErrorStatusesAreOk) {
  TestOrigin upstream;
  upstream.Set("/missing", {Response{404, {}, "nope"}});
  TypeParam origin(typename TestFixture::Opts{upstream.url()});
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

TYPED_TEST(OriginClientTest, PostAndHeadAreForwarded) {
  TestOrigin upstream;
  TypeParam origin(typename TestFixture::Opts{upstream.url()});
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

TYPED_TEST(OriginClientTest, RefusedIsUnavailableAndSlowIsTimeout) {
  // A port nobody listens on.
  TypeParam refused(typename TestFixture::Opts{"http://127.0.0.1:" + std::to_string(webtier::testing::FreePort())});
  Request req;
  req.path = "/";
  Response resp;
  EXPECT_EQ(refused.Fetch(req, &resp).code(), ErrorCode::kUnavailable);

  TestOrigin upstream;
  upstream.Set("/slow", {Response{200, {}, "late"}, 1000});
  typename TestFixture::Opts options{upstream.url()};
  options.timeout = 200ms;
  TypeParam slow(options);
  req.path = "/slow";
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(slow.Fetch(req, &resp).code(), ErrorCode::kTimeout);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 900ms);
}

}  // namespace
}  // namespace webtier::cache
