// Cache poisoning: for every input the cache does not key on, an attacker's
// request goes first on a fresh key, then a clean client's request must get
// the answer built for a clean request. Real webnode, real Redis, an origin
// that reflects what reached it (reflect_origin.h).
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <memory>

#include "reflect_origin.h"
#include "webtier/testing/harness.h"

namespace webtier::cache {
namespace {

using namespace std::chrono_literals;
using namespace webtier::testing;
using webtier::cache::testing::ReflectOrigin;

constexpr char kSite[] = "Host: www.example";

class PoisoningTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    redis_ = new RedisServer();
    redis_->Start();
    origin_ = new ReflectOrigin();
  }
  static void TearDownTestSuite() {
    delete origin_;
    delete redis_;
  }

  // A node in front of the reflecting origin (ZooKeeper is not needed to serve).
  std::unique_ptr<Webnode> StartNode(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--redis", redis_->address(), "--origin", origin_->url()};
    args.insert(args.end(), extra.begin(), extra.end());
    auto node = std::make_unique<Webnode>("poison", "127.0.0.1:" + std::to_string(FreePort()), args);
    node->WaitHealthy();
    return node;
  }
  static std::string Fresh(const std::string& name) {
    static std::atomic<int> n{0};
    return "/" + name + "-" + std::to_string(::getpid()) + "-" + std::to_string(++n);
  }

  static RedisServer* redis_;
  static ReflectOrigin* origin_;
};

RedisServer* PoisoningTest::redis_ = nullptr;
ReflectOrigin* PoisoningTest::origin_ = nullptr;

// The clean answer: what reached the origin for a request with nothing but the Host.
void ExpectClean(const HttpResponse& r, const std::string& host = "www.example") {
  ASSERT_EQ(r.status, 200) << r.error << r.body;
  EXPECT_NE(r.body.find("\r\nHost: " + host + "\r\n"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("\r\nX-Forwarded-Host: " + host + "\r\n"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("\r\nX-Forwarded-Proto: http\r\n"), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find("evil"), std::string::npos) << r.body;
  EXPECT_EQ(r.body.rfind("GET ", 0), 0u) << r.body;
  EXPECT_NE(r.body.find("body="), std::string::npos);
  EXPECT_EQ(r.body.substr(r.body.find("body=")), "body=") << "a GET reaches the origin without a body";
}

TEST_F(PoisoningTest, HostIsKeyed) {
  auto node = StartNode();
  const std::string path = Fresh("host");
  HttpResponse evil = HttpRequest("GET", node->url(path), {"Host: evil.example"});
  ASSERT_EQ(evil.status, 200);
  EXPECT_EQ(evil.header("x-cache"), "MISS");
  HttpResponse clean = HttpRequest("GET", node->url(path), {kSite});
  EXPECT_EQ(clean.header("x-cache"), "MISS") << "another Host is another entry";
  ExpectClean(clean);
  // Case and the default port do not split entries.
  HttpResponse same = HttpRequest("GET", node->url(path), {"Host: WWW.Example:80"});
  EXPECT_EQ(same.header("x-cache"), "HIT");
  EXPECT_EQ(same.body, clean.body);
}

TEST_F(PoisoningTest, ForwardedHostAndOverridesNeverReachTheOrigin) {
  auto node = StartNode();
  const std::string path = Fresh("xfh");
  HttpResponse evil = HttpRequest("GET", node->url(path),
                                  {kSite, "X-Forwarded-Host: evil.example", "X-Forwarded-Server: evil.example",
                                   "X-Forwarded-Scheme: evil", "X-Forwarded-Port: 6666",
                                   "Forwarded: host=evil.example;proto=https", "X-Original-URL: /evil",
                                   "X-Rewrite-URL: /evil", "X-HTTP-Method-Override: DELETE"});
  ASSERT_EQ(evil.status, 200);
  // Not one of them reached the origin, even for the attacker.
  ExpectClean(evil);
  for (const char* name : {"X-Forwarded-Server", "X-Forwarded-Scheme", "X-Forwarded-Port", "Forwarded:",
                           "X-Original-URL", "X-Rewrite-URL", "X-HTTP-Method-Override"}) {
    EXPECT_EQ(evil.body.find(name), std::string::npos) << name << " reached the origin: " << evil.body;
  }
  HttpResponse clean = HttpRequest("GET", node->url(path), {kSite});
  EXPECT_EQ(clean.header("x-cache"), "HIT");
  ExpectClean(clean);
}

TEST_F(PoisoningTest, SchemeIsKeyed) {
  auto node = StartNode();
  const std::string path = Fresh("proto");
  HttpResponse https = HttpRequest("GET", node->url(path), {kSite, "X-Forwarded-Proto: https"});
  ASSERT_EQ(https.status, 200);
  EXPECT_NE(https.body.find("\r\nX-Forwarded-Proto: https\r\n"), std::string::npos) << https.body;
  HttpResponse http = HttpRequest("GET", node->url(path), {kSite});
  EXPECT_EQ(http.header("x-cache"), "MISS") << "HTTP and HTTPS requests do not share entries";
  ExpectClean(http);
  // Anything but http or https is http.
  HttpResponse odd = HttpRequest("GET", node->url(path), {kSite, "X-Forwarded-Proto: evil"});
  EXPECT_EQ(odd.header("x-cache"), "HIT");
  ExpectClean(odd);
}

TEST_F(PoisoningTest, FatGetBodyIsNotForwarded) {
  auto node = StartNode();
  const std::string path = Fresh("fat");
  HttpResponse evil = HttpRequest("GET", node->url(path), {kSite, "Content-Type: application/x-www-form-urlencoded"},
                                  "evil=1");
  ASSERT_EQ(evil.status, 200);
  ExpectClean(evil);
  HttpResponse clean = HttpRequest("GET", node->url(path), {kSite});
  ExpectClean(clean);
}

TEST_F(PoisoningTest, ParameterCloakingNamesAnotherEntry) {
  auto node = StartNode();
  const std::string path = Fresh("cloak");
  HttpResponse evil = HttpRequest("GET", node->url(path + "?utm=1;callback=evil"), {kSite});
  ASSERT_EQ(evil.status, 200);
  HttpResponse clean = HttpRequest("GET", node->url(path + "?utm=1"), {kSite});
  EXPECT_EQ(clean.header("x-cache"), "MISS");
  ExpectClean(clean);
}

TEST_F(PoisoningTest, RangeAndConditionalsDoNotLeakIntoTheStoredAnswer) {
  auto node = StartNode();
  const std::string path = Fresh("range");
  HttpResponse part = HttpRequest("GET", node->url(path), {kSite, "Range: bytes=0-3"});
  EXPECT_EQ(part.status, 206);
  EXPECT_EQ(part.body.size(), 4u);
  HttpResponse clean = HttpRequest("GET", node->url(path), {kSite});
  EXPECT_EQ(clean.header("x-cache"), "HIT");
  ExpectClean(clean);
  EXPECT_EQ(clean.body.find("Range"), std::string::npos) << clean.body;

  const std::string cond = Fresh("cond");
  HttpResponse validating = HttpRequest(
      "GET", node->url(cond),
      {kSite, "If-None-Match: \"evil\"", "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT", "If-Range: \"evil\""});
  ASSERT_EQ(validating.status, 200);
  HttpResponse after = HttpRequest("GET", node->url(cond), {kSite});
  EXPECT_EQ(after.status, 200);
  EXPECT_EQ(after.header("x-cache"), "HIT");
  ExpectClean(after);
  EXPECT_EQ(after.body.find("If-"), std::string::npos) << after.body;
}

TEST_F(PoisoningTest, OriginHostDropsHostFromTheKey) {
  auto node = StartNode({"--origin-host", "site.example"});
  const std::string path = Fresh("fixed");
  HttpResponse evil = HttpRequest("GET", node->url(path), {"Host: evil.example", "X-Forwarded-Host: evil.example"});
  ASSERT_EQ(evil.status, 200);
  ExpectClean(evil, "site.example");
  HttpResponse clean = HttpRequest("GET", node->url(path), {kSite});
  EXPECT_EQ(clean.header("x-cache"), "HIT") << "one Host reaches the origin: one entry";
  ExpectClean(clean, "site.example");
}

TEST_F(PoisoningTest, HostAllowListAndInvalidHosts) {
  auto node = StartNode({"--host", "WWW.example:80,api.example"});
  EXPECT_EQ(HttpRequest("GET", node->url(Fresh("ok")), {kSite}).status, 200);
  EXPECT_EQ(HttpRequest("GET", node->url(Fresh("ok")), {"Host: api.example"}).status, 200);
  const int before = origin_->requests();
  EXPECT_EQ(HttpRequest("GET", node->url(Fresh("no")), {"Host: evil.example"}).status, 421);
  EXPECT_EQ(HttpRequest("GET", node->url(Fresh("no")), {"Host: www.example:8080"}).status, 421);
  for (const char* bad : {"Host: evil.example/x", "Host: user@www.example", "Host: [::1", "Host: a b",
                          "Host: www.example:99999"}) {
    EXPECT_EQ(HttpRequest("GET", node->url(Fresh("bad")), {bad}).status, 400) << bad;
  }
  EXPECT_EQ(origin_->requests(), before) << "refused requests never reach the origin";
  // /health is the node's own whatever the Host: the balancer checks it by address.
  EXPECT_EQ(HttpGet(node->url("/health")).status, 200);
  const std::string metrics = node->Metrics();
  EXPECT_EQ(MetricValue(metrics, "webnode_http_refused_total", {{"reason", "misdirected"}}), 2.0);
  EXPECT_EQ(MetricValue(metrics, "webnode_http_refused_total", {{"reason", "bad_host"}}), 5.0);
}

}  // namespace
}  // namespace webtier::cache
