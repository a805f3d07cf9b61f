// The shared cache end to end: real Redis, real ZooKeeper, two webnode
// processes (and an in-process upstream for --origin).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <ctime>
#include <future>
#include <map>
#include <thread>

#include "test_origin.h"
#include "webtier/cache/http_date.h"
#include "webtier/cache/message.h"
#include "webtier/cache/record.h"
#include "webtier/cache/redis_store.h"
#include "webtier/testing/harness.h"

namespace webtier::cache {
namespace {

using namespace std::chrono_literals;
using namespace webtier::testing;
using webtier::cache::testing::TestOrigin;

// The site every request of this suite is for, and its part of the cache keys.
constexpr char kHost[] = "cache.test";
constexpr char kKeyPrefix[] = "webtier:v2:http://cache.test";

// One webnode (testing::Webnode) on this suite's membership path and Redis.
class Node {
 public:
  Node(const std::string& id, const std::string& zk, const std::string& redis, std::vector<std::string> extra = {})
      : node_(id, zk, Args(redis, std::move(extra))) {
    node_.WaitHealthy();
  }
  std::string url(const std::string& path) const { return node_.url(path); }
  uint16_t port() const { return node_.port(); }
  std::string admin_url(const std::string& path) const { return node_.admin_url(path); }
  // The cache keys on the Host: every node is asked for one site, kHost, as
  // the balancer would pass it, so they share entries.
  HttpResponse Request(const std::string& method, const std::string& path, std::vector<std::string> headers = {},
                       const std::string& body = "", std::chrono::milliseconds timeout = 15s) const {
    headers.insert(headers.begin(), "Host: " + std::string(kHost));
    return HttpRequest(method, url(path), headers, body, timeout);
  }
  HttpResponse Get(const std::string& path, std::vector<std::string> headers = {}) const {
    return Request("GET", path, std::move(headers));
  }
  double Metric(const std::string& name, const std::map<std::string, std::string>& labels = {}) const {
    return MetricValue(node_.Metrics(), name, labels).value_or(0);
  }
  Process& process() { return node_.process(); }

 private:
  static std::vector<std::string> Args(const std::string& redis, std::vector<std::string> extra) {
    std::vector<std::string> args = {"--zk-path", "/webtier/cache-test", "--redis", redis};
    args.insert(args.end(), std::make_move_iterator(extra.begin()), std::make_move_iterator(extra.end()));
    return args;
  }
  Webnode node_;
};

class CacheTierTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    zk_ = new ZooKeeperServer();
    zk_->Start();
    redis_ = new RedisServer();
    redis_->Start();
  }
  static void TearDownTestSuite() {
    delete redis_;
    delete zk_;
  }
  void SetUp() override {
    if (!redis_->running()) redis_->Start();
  }

  std::unique_ptr<Node> StartNode(const std::string& id, std::vector<std::string> extra = {}) {
    return std::make_unique<Node>(id, zk_->connect(), redis_->address(), std::move(extra));
  }
  // A key no other test (or earlier run) has used.
  static std::string Unique(const std::string& prefix) {
    static std::atomic<int> n{0};
    return prefix + std::to_string(::getpid()) + "-" + std::to_string(++n);
  }

  static ZooKeeperServer* zk_;
  static RedisServer* redis_;
};

ZooKeeperServer* CacheTierTest::zk_ = nullptr;
RedisServer* CacheTierTest::redis_ = nullptr;

TEST_F(CacheTierTest, MissThenHitWithAnIdenticalBody) {
  auto a = StartNode("a");
  const std::string path = "/api/primes/" + std::to_string(20000 + ::getpid() % 1000);
  HttpResponse miss = a->Get(path);
  ASSERT_EQ(miss.status, 200) << miss.error;
  EXPECT_EQ(miss.header("x-cache"), "MISS");
  EXPECT_EQ(miss.header("age"), "");
  EXPECT_EQ(miss.header("cache-control"), "public, max-age=60");
  HttpResponse hit = a->Get(path);
  EXPECT_EQ(hit.header("x-cache"), "HIT");
  EXPECT_EQ(hit.body, miss.body);
  EXPECT_NE(hit.header("age"), "");
  EXPECT_EQ(hit.header("x-served-by"), "a");
  // HEAD is answered from the GET entry.
  HttpResponse head = a->Request("HEAD", path);
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.header("x-cache"), "HIT");
  EXPECT_EQ(a->Metric("webnode_cache_lookups_total", {{"result", "hit"}}), 2);
  EXPECT_EQ(a->Metric("webnode_origin_requests_total"), 1);
}

TEST_F(CacheTierTest, NodeBHitsWhatNodeAFetched) {
  auto a = StartNode("a");
  auto b = StartNode("b");
  const std::string path = "/api/sleep/10?" + Unique("k=");
  HttpResponse miss = a->Get(path);
  ASSERT_EQ(miss.status, 200);
  EXPECT_EQ(miss.header("x-cache"), "MISS");
  HttpResponse hit = b->Get(path);
  EXPECT_EQ(hit.header("x-cache"), "HIT");
  EXPECT_EQ(hit.header("x-served-by"), "b");
  EXPECT_EQ(hit.body, miss.body);
  EXPECT_NE(hit.body.find("\"computed_by\":\"a\""), std::string::npos) << hit.body;
  EXPECT_EQ(b->Metric("webnode_origin_requests_total"), 0);
}

// The next answer on a keep-alive connection: the head, then Content-Length
// bytes of body. `rest` carries what was read past it.
std::string ReadAnswer(int fd, std::string* rest) {
  std::string got = std::move(*rest);
  rest->clear();
  char buf[65536];
  size_t want = std::string::npos;
  for (;;) {
    const size_t end = got.find("\r\n\r\n");
    if (want == std::string::npos && end != std::string::npos) {
      const size_t at = got.find("Content-Length: ");
      if (at == std::string::npos || at > end) return got;
      want = end + 4 + std::stoul(got.substr(at + 16));
    }
    if (got.size() >= want) break;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return got;
    got.append(buf, static_cast<size_t>(n));
  }
  *rest = got.substr(want);
  got.resize(want);
  return got;
}

// An answer larger than the socket takes at once is finished by the node's
// writer thread while the client reads nothing, then reaches it whole; the
// next answer on the connection follows it, not in the middle of it.
TEST_F(CacheTierTest, AnAnswerTheClientReadsLateArrivesWholeAndInOrder) {
  TestOrigin upstream;
  std::string first(6 << 20, 'x'), second(1 << 20, 'y');
  for (size_t i = 0; i < first.size(); i += 4096) first[i] = static_cast<char>('a' + (i / 4096) % 26);
  upstream.Set("/big", {Response{200, {{"Cache-Control", "max-age=60"}}, first}});
  upstream.Set("/next", {Response{200, {{"Cache-Control", "max-age=60"}}, second}});
  auto a = StartNode("a", {"--origin", upstream.url()});
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  const int small = 64 * 1024;  // the client's window fills long before 6 MiB are sent
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  timeval tv{15, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(a->port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string host = "Host: " + std::string(kHost) + "\r\n\r\n";
  ASSERT_TRUE(SendAll(fd, "GET /big HTTP/1.1\r\n" + host));
  std::this_thread::sleep_for(500ms);
  ASSERT_TRUE(SendAll(fd, "GET /next HTTP/1.1\r\n" + host));  // while the first answer waits
  std::string rest;
  for (const std::string* body : {&first, &second}) {
    const std::string got = ReadAnswer(fd, &rest);
    const size_t end = got.find("\r\n\r\n");
    ASSERT_NE(end, std::string::npos) << got.substr(0, 200);
    EXPECT_EQ(got.rfind("HTTP/1.1 200", 0), 0u) << got.substr(0, 200);
    EXPECT_TRUE(got.compare(end + 4, std::string::npos, *body) == 0)
        << "a body of " << got.size() - end - 4 << " bytes, not the " << body->size() << " expected";
  }
  ::close(fd);
}

TEST_F(CacheTierTest, EntriesExpireAfterTheTtl) {
  TestOrigin upstream;
  // No explicit freshness: heuristic freshness from Last-Modified, capped by
  // --cache-ttl; no grace, so the entry is stale at the TTL.
  upstream.Set("/ttl", {Response{200, {{"Cache-Control", "public, stale-while-revalidate=0, stale-if-error=0"},
                                       {"Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT"}}, "v"}});
  auto a = StartNode("a", {"--origin", upstream.url(), "--cache-ttl", "1"});
  EXPECT_EQ(a->Get("/ttl").header("x-cache"), "MISS");
  EXPECT_EQ(a->Get("/ttl").header("x-cache"), "HIT");
  std::this_thread::sleep_for(1100ms);
  EXPECT_EQ(a->Get("/ttl").header("x-cache"), "MISS");
  EXPECT_EQ(upstream.Hits("/ttl"), 2);
  EXPECT_EQ(redis_->Cli({"EXISTS", std::string(kKeyPrefix) + "/ttl"}), "1");
}

TEST_F(CacheTierTest, CacheTtlIsHeuristicOnlyAndNeverOverridesExplicitFreshness) {
  TestOrigin upstream;
  const std::string lm = "Sun, 06 Nov 1994 08:49:37 GMT";
  upstream.Set("/negative", {Response{200, {{"Cache-Control", "max-age=-3600"}, {"Last-Modified", lm}}, "n"}});
  upstream.Set("/expired", {Response{200, {{"Expires", "Sun, 06 Nov 1994 08:49:37 GMT"}, {"Last-Modified", lm}}, "e"}});
  upstream.Set("/bare", {Response{200, {{"Content-Type", "text/plain"}}, "b"}});
  upstream.Set("/heuristic", {Response{200, {{"Last-Modified", lm}}, "h"}});
  auto a = StartNode("a", {"--origin", upstream.url(), "--cache-ttl", "60"});
  auto b = StartNode("b", {"--origin", upstream.url(), "--cache-ttl", "60"});
  for (const char* path : {"/negative", "/expired", "/bare"}) {
    EXPECT_EQ(a->Get(path).header("x-cache"), "MISS") << path;
    EXPECT_EQ(b->Get(path).header("x-cache"), "MISS") << path;
    EXPECT_EQ(upstream.Hits(path), 2) << path;
  }
  EXPECT_EQ(a->Get("/heuristic").header("x-cache"), "MISS");
  EXPECT_EQ(b->Get("/heuristic").header("x-cache"), "HIT");
}

TEST_F(CacheTierTest, DateAgeAndCacheStatusAreSent) {
  TestOrigin upstream;
  const std::string date = FormatHttpDate(std::time(nullptr) - 1);
  upstream.Set("/aged", {Response{200, {{"Cache-Control", "max-age=600"}, {"Age", "100"}, {"Date", date}}, "aged"}});
  auto a = StartNode("a", {"--origin", upstream.url()});
  auto b = StartNode("b", {"--origin", upstream.url()});
  HttpResponse miss = a->Get("/aged");
  EXPECT_GE(std::stoi(miss.header("age")), 100);  // the origin's Age counted
  EXPECT_EQ(miss.header("date"), date);  // kept, not replaced
  EXPECT_NE(miss.header("cache-status").find("webtier; fwd=uri-miss; fwd-status=200; stored"), std::string::npos)
      << miss.header("cache-status");
  HttpResponse hit = b->Get("/aged");
  EXPECT_EQ(hit.header("x-cache"), "HIT");
  EXPECT_GE(std::stoi(hit.header("age")), 100);
  EXPECT_EQ(hit.header("date"), date);
  EXPECT_EQ(hit.header("cache-status").rfind("webtier; hit; ttl=", 0), 0u) << hit.header("cache-status");
  // The node's own answers carry a Date too.
  EXPECT_NE(HttpGet(a->url("/")).header("date"), "");
  // HEAD carries the representation's length, not 0.
  HttpResponse head = b->Request("HEAD", "/aged");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.header("content-length"), "4");
  EXPECT_EQ(head.body, "");
  // Also for an answer the cache does not keep: the HEAD goes to the origin,
  // whose Content-Length is the representation's.
  upstream.Set("/private", {Response{200, {{"Cache-Control", "no-store"}}, "12345"}});
  HttpResponse uncached = a->Request("HEAD", "/private");
  EXPECT_EQ(uncached.status, 200);
  EXPECT_EQ(uncached.header("content-length"), "5");
  EXPECT_EQ(uncached.body, "");
}

TEST_F(CacheTierTest, VariantsOnTwoVaryLinesAcrossTwoNodes) {
  TestOrigin upstream;
  // Two Vary lines on the wire. Pistache keeps one header per name, so the
  // test origin writes the second line inside the first one's value.
  TestOrigin::Canned canned{Response{200, {{"Cache-Control", "max-age=60"},
                                           {"Vary", "Accept-Encoding\r\nVary: Accept-Language"}}, "lang="}};
  canned.echo = "Accept-Language";
  upstream.Set("/greeting", canned);
  auto a = StartNode("a", {"--origin", upstream.url(), "--admin-token", "t"});
  auto b = StartNode("b", {"--origin", upstream.url()});
  EXPECT_EQ(a->Get("/greeting", {"Accept-Encoding: gzip", "Accept-Language: de"}).body, "lang=de");
  EXPECT_EQ(a->Get("/greeting", {"Accept-Encoding: gzip", "Accept-Language: fr"}).body, "lang=fr");
  HttpResponse de = b->Get("/greeting", {"Accept-Encoding: gzip", "Accept-Language: de"});
  EXPECT_EQ(de.header("x-cache"), "HIT");
  EXPECT_EQ(de.body, "lang=de");
  HttpResponse fr = b->Get("/greeting", {"Accept-Encoding: gzip", "Accept-Language: fr"});
  EXPECT_EQ(fr.header("x-cache"), "HIT");
  EXPECT_EQ(fr.body, "lang=fr");
  // The other Vary line selects too.
  EXPECT_EQ(b->Get("/greeting", {"Accept-Encoding: br", "Accept-Language: de"}).header("x-cache"), "MISS");
  EXPECT_EQ(upstream.Hits("/greeting"), 3);
  // A purge removes every variant, on every node.
  EXPECT_EQ(HttpRequest("POST", a->admin_url("/admin/purge?path=/greeting"), {"Authorization: Bearer t"}).status, 200);
  EXPECT_TRUE(WaitFor([&] {
    return b->Get("/greeting", {"Accept-Encoding: gzip", "Accept-Language: fr"}).header("x-cache") == "MISS";
  }, 2s));
  EXPECT_EQ(a->Get("/greeting", {"Accept-Encoding: gzip", "Accept-Language: de"}).header("x-cache"), "MISS");
  // Vary: * is never reused.
  upstream.Set("/star", {Response{200, {{"Cache-Control", "max-age=60"}, {"Vary", "*"}}, "s"}});
  a->Get("/star");
  EXPECT_EQ(b->Get("/star").header("x-cache"), "MISS");
}

TEST_F(CacheTierTest, ARangeFirstRequestLeadsTheSharedFetchWithoutItsRange) {
  TestOrigin upstream;
  upstream.Set("/co", {Response{200, {{"Cache-Control", "max-age=60"}, {"ETag", "\"x\""}}, "0123456789"}, 400});
  auto a = StartNode("a", {"--origin", upstream.url()});
  auto b = StartNode("b", {"--origin", upstream.url()});
  auto first = std::async(std::launch::async, [&] { return a->Get("/co", {"Range: bytes=0-1"}); });
  std::this_thread::sleep_for(100ms);
  std::vector<std::future<HttpResponse>> plain;
  for (int i = 0; i < 6; ++i) {
    plain.push_back(std::async(std::launch::async, [&, i] { return (i % 2 == 0 ? a : b)->Get("/co"); }));
  }
  // The first client gets its range, cut from the whole response the others get.
  HttpResponse f = first.get();
  EXPECT_EQ(f.status, 206);
  EXPECT_EQ(f.body, "01");
  EXPECT_EQ(f.header("content-range"), "bytes 0-1/10");
  for (auto& p : plain) {
    HttpResponse r = p.get();
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "0123456789");
  }
  const auto seen = upstream.Requests("/co");
  ASSERT_EQ(seen.size(), 1u);  // one fetch for the tier, without the first client's Range
  EXPECT_FALSE(HasHeader(seen[0], "Range"));
}

TEST_F(CacheTierTest, ConditionalFirstRequestLeadsTheSharedFetch) {
  TestOrigin upstream;
  upstream.Set("/cond", {Response{200, {{"Cache-Control", "max-age=60"}, {"ETag", "\"x\""}}, "full body"}, 400});
  auto a = StartNode("a", {"--origin", upstream.url()});
  auto first = std::async(std::launch::async, [&] { return a->Get("/cond", {"If-None-Match: \"x\"", "Range: bytes=0-1"}); });
  std::this_thread::sleep_for(100ms);
  std::vector<std::future<HttpResponse>> plain;
  for (int i = 0; i < 4; ++i) plain.push_back(std::async(std::launch::async, [&] { return a->Get("/cond"); }));
  EXPECT_EQ(first.get().status, 304);
  for (auto& p : plain) {
    HttpResponse r = p.get();
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "full body");
  }
  const auto seen = upstream.Requests("/cond");
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_FALSE(HasHeader(seen[0], "If-None-Match"));
  EXPECT_FALSE(HasHeader(seen[0], "Range"));
  // A client conditional on a fresh entry: 304 from the cache.
  HttpResponse nm = a->Get("/cond", {"If-None-Match: \"x\""});
  EXPECT_EQ(nm.status, 304);
  EXPECT_EQ(nm.header("x-cache"), "HIT");
  EXPECT_EQ(upstream.Hits("/cond"), 1);
}

TEST_F(CacheTierTest, StaleEntriesAreRevalidatedAndA304UpdatesThem) {
  TestOrigin upstream;
  TestOrigin::Canned canned{Response{200, {{"Cache-Control", "max-age=1"}, {"ETag", "\"v1\""}, {"X-Version", "1"}}, "body"}};
  canned.conditional = true;
  upstream.Set("/rv", canned);
  auto a = StartNode("a", {"--origin", upstream.url()});
  auto b = StartNode("b", {"--origin", upstream.url()});
  EXPECT_EQ(a->Get("/rv").header("x-cache"), "MISS");
  std::this_thread::sleep_for(1200ms);
  canned.response.headers = {{"Cache-Control", "max-age=60"}, {"ETag", "\"v1\""}, {"X-Version", "2"}};
  upstream.Set("/rv", canned);
  HttpResponse revalidated = b->Get("/rv");
  EXPECT_EQ(revalidated.status, 200);
  EXPECT_EQ(revalidated.body, "body");
  EXPECT_EQ(revalidated.header("x-version"), "2");
  EXPECT_NE(revalidated.header("cache-status").find("fwd=stale; fwd-status=304"), std::string::npos)
      << revalidated.header("cache-status");
  const auto seen = upstream.Requests("/rv");
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(FindHeader(seen[1], "If-None-Match"), "\"v1\"");
  HttpResponse hit = a->Get("/rv");  // the 304's max-age=60 now applies
  EXPECT_EQ(hit.header("x-cache"), "HIT");
  EXPECT_EQ(hit.header("x-version"), "2");
  EXPECT_EQ(upstream.Hits("/rv"), 2);
}

TEST_F(CacheTierTest, UnsafeMethodsInvalidateAcrossTheTier) {
  TestOrigin upstream;
  upstream.Set("/doc", {Response{200, {{"Cache-Control", "max-age=600"}}, "doc"}});
  upstream.Set("/list", {Response{200, {{"Cache-Control", "max-age=600"}}, "list"}});
  auto a = StartNode("a", {"--origin", upstream.url()});
  auto b = StartNode("b", {"--origin", upstream.url()});
  a->Get("/doc");
  a->Get("/list");
  EXPECT_EQ(b->Get("/doc").header("x-cache"), "HIT");
  EXPECT_EQ(a->Get("/doc").header("x-cache"), "HIT");
  // A POST whose answer names /list in Location invalidates /doc and /list.
  upstream.Set("/doc", {Response{201, {{"Location", "/list"}}, "created"}});
  EXPECT_EQ(b->Request("POST", "/doc", {}, "x").status, 201);
  upstream.Set("/doc", {Response{200, {{"Cache-Control", "max-age=600"}}, "doc"}});
  EXPECT_TRUE(WaitFor([&] { return a->Get("/doc").header("x-cache") == "MISS"; }, 2s));
  EXPECT_EQ(a->Get("/list").header("x-cache"), "MISS");
  // A failed DELETE changes nothing.
  upstream.Set("/list", {Response{500, {}, "no"}});
  EXPECT_EQ(b->Request("DELETE", "/list").status, 500);
  EXPECT_EQ(a->Get("/list").header("x-cache"), "HIT");
}

TEST_F(CacheTierTest, SurrogateKeyTagPurgeReachesEveryNode) {
  TestOrigin upstream;
  upstream.Set("/t1", {Response{200, {{"Cache-Control", "max-age=600"}, {"Surrogate-Key", "news sport"}}, "1"}});
  upstream.Set("/t2", {Response{200, {{"Cache-Control", "max-age=600"}, {"Surrogate-Key", "news"}}, "2"}});
  upstream.Set("/t3", {Response{200, {{"Cache-Control", "max-age=600"}, {"Surrogate-Key", "weather"}}, "3"}});
  auto a = StartNode("a", {"--origin", upstream.url(), "--admin-token", "t"});
  auto b = StartNode("b", {"--origin", upstream.url(), "--admin-token", "t"});
  for (const char* p : {"/t1", "/t2", "/t3"}) {
    a->Get(p);
    EXPECT_EQ(b->Get(p).header("x-cache"), "HIT") << p;
  }
  EXPECT_EQ(HttpRequest("POST", b->admin_url("/admin/purge?tag=news")).status, 401);
  HttpResponse purged = HttpRequest("POST", b->admin_url("/admin/purge?tag=news"), {"Authorization: Bearer t"});
  EXPECT_EQ(purged.status, 200);
  EXPECT_NE(purged.body.find("\"urls\":2"), std::string::npos) << purged.body;
  EXPECT_TRUE(WaitFor([&] { return a->Get("/t1").header("x-cache") == "MISS"; }, 2s));
  EXPECT_EQ(a->Get("/t2").header("x-cache"), "MISS");
  EXPECT_EQ(a->Get("/t3").header("x-cache"), "HIT");
}

// The race a purge used to lose: a fill is at the origin when the content
// changes and the purge comes (through another node). The fill's answer,
// the old content, reaches its own client but is not stored, so nobody gets
// it from the cache afterwards.
TEST_F(CacheTierTest, AFillUnderWayWhenAPurgeComesStoresNothing) {
  TestOrigin upstream;
  auto canned = [](const char* body, int delay_ms) {
    return TestOrigin::Canned{Response{200, {{"Cache-Control", "max-age=600"}, {"Surrogate-Key", "race"}}, body},
                              delay_ms};
  };
  auto a = StartNode("a", {"--origin", upstream.url(), "--admin-token", "t"});
  auto b = StartNode("b", {"--origin", upstream.url(), "--admin-token", "t"});
  for (const std::string by : {"path", "tag"}) {
    const std::string path = "/" + Unique("race");
    const std::string how = by == "path" ? "path=" + path : "tag=race";
    SCOPED_TRACE(how);
    upstream.Set(path, canned("old", 800));
    auto slow = std::async(std::launch::async, [&] { return a->Get(path); });
    ASSERT_TRUE(WaitFor([&] { return upstream.Hits(path) == 1; }, 5s));  // at the origin
    upstream.Set(path, canned("new", 0));
    HttpResponse purged = HttpRequest("POST", b->admin_url("/admin/purge?" + how), {"Authorization: Bearer t"});
    ASSERT_EQ(purged.status, 200) << purged.body;
    const HttpResponse first = slow.get();
    EXPECT_EQ(first.status, 200);
    EXPECT_EQ(first.body, "old");
    EXPECT_EQ(b->Get(path).body, "new");
    EXPECT_EQ(a->Get(path).body, "new");
    EXPECT_EQ(a->Get(path).header("x-cache"), "HIT");
  }
  EXPECT_EQ(a->Metric("webnode_cache_fenced_fills_total"), 2);
}

TEST_F(CacheTierTest, ARecordOfTheFormerFormatIsAMissNotAnError) {
  auto a = StartNode("a");
  const std::string path = "/api/primes/" + std::to_string(6000 + ::getpid() % 1000);
  Record old;
  old.response = Response{200, {{"Content-Type", "application/json"}}, "{\"stale\":\"format\"}"};
  old.stored_at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch()).count();
  old.ttl_ms = 600'000;
  std::string bytes = EncodeRecord(old);
  bytes[3] = 1;  // as format version 1 wrote it
  RedisOptions options;
  options.address = net::HostPort{"127.0.0.1", redis_->port()};
  RedisStore store(options);
  ASSERT_TRUE(store.Put(kKeyPrefix + path, bytes, 60s).ok());
  HttpResponse miss = a->Get(path);
  EXPECT_EQ(miss.status, 200);
  EXPECT_EQ(miss.header("x-cache"), "MISS");
  EXPECT_EQ(miss.body.find("stale"), std::string::npos);
  EXPECT_EQ(a->Metric("webnode_cache_corrupt_records_total"), 0);
  EXPECT_EQ(a->Get(path).header("x-cache"), "HIT");
}

TEST_F(CacheTierTest, AnExpiredEntryIsServedStaleWhileOneRequestRefreshesIt) {
  TestOrigin upstream;
  upstream.Set("/swr", {Response{200, {{"Cache-Control", "max-age=1, stale-while-revalidate=30"}}, "v1"}});
  auto a = StartNode("a", {"--origin", upstream.url()});
  EXPECT_EQ(a->Get("/swr").header("x-cache"), "MISS");
  std::this_thread::sleep_for(1100ms);
  upstream.Set("/swr", {Response{200, {{"Cache-Control", "max-age=60"}}, "v2"}});
  HttpResponse stale = a->Get("/swr");
  EXPECT_EQ(stale.header("x-cache"), "STALE");
  EXPECT_EQ(stale.body, "v1");
  ASSERT_TRUE(WaitFor([&] { return a->Get("/swr").header("x-cache") == "HIT"; }, 5s));
  EXPECT_EQ(a->Get("/swr").body, "v2");
  EXPECT_EQ(upstream.Hits("/swr"), 2);
}

TEST_F(CacheTierTest, NoStoreIsNeverCached) {
  auto a = StartNode("a");
  for (int i = 0; i < 2; ++i) {
    HttpResponse r = a->Get("/api/time");
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.header("cache-control"), "no-store");
    EXPECT_EQ(r.header("x-cache"), "");  // not eligible: the cache is not consulted
  }
  EXPECT_EQ(redis_->Cli({"EXISTS", std::string(kKeyPrefix) + "/api/time"}), "0");
  EXPECT_EQ(a->Metric("webnode_origin_requests_total"), 2);

  TestOrigin upstream;
  upstream.Set("/private", {Response{200, {{"Cache-Control", "no-store"}}, "p"}});
  upstream.Set("/cookie", {Response{200, {{"Cache-Control", "max-age=60"}, {"Set-Cookie", "s=1"}}, "c"}});
  auto b = StartNode("b", {"--origin", upstream.url()});
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(b->Get("/private").header("x-cache"), "MISS");
    EXPECT_EQ(b->Get("/cookie").header("x-cache"), "MISS");
    EXPECT_EQ(b->Get("/auth", {"Authorization: Bearer x"}).header("x-cache"), "");
    EXPECT_EQ(b->Get("/cookie-req", {"Cookie: a=b"}).header("x-cache"), "");
  }
  EXPECT_EQ(upstream.Hits("/private"), 2);
  EXPECT_EQ(upstream.Hits("/cookie"), 2);
  EXPECT_EQ(upstream.Hits("/auth"), 2);
  EXPECT_EQ(upstream.Hits("/cookie-req"), 2);
}

TEST_F(CacheTierTest, FiftyConcurrentMissesOnTwoNodesCauseOneOriginFetch) {
  auto a = StartNode("a");
  auto b = StartNode("b");
  const std::string path = "/api/sleep/300?" + Unique("k=");
  std::vector<std::future<HttpResponse>> replies;
  for (int i = 0; i < 50; ++i) {
    const Node* node = i % 2 == 0 ? a.get() : b.get();
    replies.push_back(std::async(std::launch::async, [node, path] { return node->Get(path); }));
  }
  std::string body;
  for (auto& f : replies) {
    HttpResponse r = f.get();
    ASSERT_EQ(r.status, 200) << r.error;
    if (body.empty()) body = r.body;
    EXPECT_EQ(r.body, body);
  }
  EXPECT_EQ(a->Metric("webnode_origin_requests_total") + b->Metric("webnode_origin_requests_total"), 1);
}

TEST_F(CacheTierTest, ALockLeftByADeadNodeBlocksTheKeyOnlyUntilItExpires) {
  auto a = StartNode("a");
  const std::string path = "/api/sleep/1?" + Unique("dead=");
  // What a node that died mid-fill leaves behind: its lock, with an expiry.
  redis_->Cli({"SET", "webtier:lock:" + std::string(kKeyPrefix) + path, "dead-node:token", "PX", "1500"});
  auto start = std::chrono::steady_clock::now();
  HttpResponse r = a->Get(path);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("x-cache"), "MISS");
  EXPECT_GE(took, 1200ms);  // it waited for the lock...
  EXPECT_LT(took, 4s);      // ...and no longer than its expiry
  EXPECT_EQ(a->Get(path).header("x-cache"), "HIT");
}

TEST_F(CacheTierTest, RedisKilledUnderLoadFailsNoRequest) {
  auto a = StartNode("a");
  auto b = StartNode("b");
  const std::string prefix = "/api/primes/" + std::to_string(1000 + ::getpid() % 1000) + "?" + Unique("r=");
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0}, total{0};
  std::mutex mu;
  std::map<std::string, int> seen;
  std::string first_failure;
  std::vector<std::thread> load;
  for (int t = 0; t < 4; ++t) {
    load.emplace_back([&, t] {
      const Node* node = t % 2 == 0 ? a.get() : b.get();
      for (int i = 0; !stop.load(); ++i) {
        HttpResponse r = node->Get(prefix + "&i=" + std::to_string(i % 8));
        ++total;
        std::lock_guard<std::mutex> lock(mu);
        if (r.status != 200) {
          if (failures++ == 0) first_failure = std::to_string(r.status) + " " + r.error;
        }
        ++seen[r.header("x-cache")];
      }
    });
  }
  auto count = [&](const std::string& x) {
    std::lock_guard<std::mutex> lock(mu);
    return seen[x];
  };
  EXPECT_TRUE(WaitFor([&] { return count("HIT") > 20; }, 10s));
  redis_->Kill();
  EXPECT_TRUE(WaitFor([&] { return count("BYPASS") > 20; }, 10s));
  const int hits_while_down = count("HIT");
  redis_->Start();
  // Within one breaker cool-down (2 s) plus a little: not one per pooled connection.
  EXPECT_TRUE(WaitFor([&] { return count("HIT") > hits_while_down + 20; }, 6s));
  stop = true;
  for (auto& t : load) t.join();
  EXPECT_EQ(failures.load(), 0) << first_failure;
  EXPECT_GT(total.load(), 100);
  EXPECT_GT(a->Metric("webnode_redis_errors_total") + b->Metric("webnode_redis_errors_total"), 0);
}

TEST_F(CacheTierTest, AStalledRedisSlowsNoRequestPastItsTimeouts) {
  auto a = StartNode("a");
  const std::string info = redis_->Cli({"INFO", "server"});
  const pid_t redis_pid = std::stoi(info.substr(info.find("process_id:") + 11));
  const std::string prefix = "/api/primes/" + std::to_string(2000 + ::getpid() % 1000) + "?" + Unique("st=");
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0}, bypass{0}, total{0};
  std::atomic<int64_t> worst_ms{0};
  std::vector<std::thread> load;
  for (int t = 0; t < 4; ++t) {
    load.emplace_back([&] {
      for (int i = 0; !stop.load(); ++i) {
        auto start = std::chrono::steady_clock::now();
        HttpResponse r = a->Request("GET", prefix + "&i=" + std::to_string(i % 50), {}, "", 3s);
        int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
        int64_t prev = worst_ms.load();
        while (ms > prev && !worst_ms.compare_exchange_weak(prev, ms)) {
        }
        ++total;
        if (r.status != 200) ++failures;
        if (r.header("x-cache") == "BYPASS") ++bypass;
      }
    });
  }
  std::this_thread::sleep_for(500ms);
  ::kill(redis_pid, SIGSTOP);  // connections stay open, nothing answers
  EXPECT_TRUE(WaitFor([&] { return bypass.load() > 20; }, 10s));
  ::kill(redis_pid, SIGCONT);
  stop = true;
  for (auto& t : load) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(total.load(), 50);
  // One Redis timeout (250 ms) plus the work, even for the requests that hit the stall.
  EXPECT_LT(worst_ms.load(), 1500);
  // After the cool-down one probe finds Redis answering and the breaker closes.
  // A key never asked for: the hot copy may still hold the load's keys, and
  // answer them with a HIT while the breaker is open.
  EXPECT_TRUE(WaitFor([&] { return a->Get(prefix + "&i=after").header("x-cache") != "BYPASS"; }, 5s));
  EXPECT_EQ(a->Metric("webnode_cache_breaker_open"), 0);
}

// A lookup whose read-and-take times out leaves the take queued in a stalled
// Redis, which runs it when it resumes: the key is then locked for a token no
// fill waits on. The node must release that lock once Redis answers, not let
// its misses wait out the lock's expiry (15 s).
TEST_F(CacheTierTest, ALockTakenAfterItsLookupTimedOutIsReleasedWhenRedisAnswers) {
  auto a = StartNode("a");
  const std::string info = redis_->Cli({"INFO", "server"});
  const pid_t redis_pid = std::stoi(info.substr(info.find("process_id:") + 11));
  const std::string path = "/api/primes/" + std::to_string(5000 + ::getpid() % 1000) + "?" + Unique("orphan=");
  const std::string lock_key = "webtier:lock:" + std::string(kKeyPrefix) + path;
  // Scripts run by their SHA-1 once Redis knows them: a miss first, or the
  // stalled lookup would find its script unknown and take no lock at all.
  EXPECT_EQ(a->Get("/api/primes/7?" + Unique("warm=")).header("x-cache"), "MISS");

  ::kill(redis_pid, SIGSTOP);
  HttpResponse bypassed = a->Get(path);  // the lookup times out after 250 ms
  ::kill(redis_pid, SIGCONT);
  EXPECT_EQ(bypassed.status, 200);
  EXPECT_EQ(bypassed.header("x-cache"), "BYPASS");

  const auto start = std::chrono::steady_clock::now();
  HttpResponse next = a->Request("GET", path, {}, "", 30s);
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(next.status, 200) << next.error;
  EXPECT_EQ(next.header("x-cache"), "MISS");
  EXPECT_LT(waited, 5s) << "the miss waited on the orphaned lock";
  EXPECT_TRUE(WaitFor([&] { return a->Metric("webnode_cache_orphan_locks_released_total") >= 1; }, 5s));
  EXPECT_TRUE(WaitFor([&] { return redis_->Cli({"EXISTS", lock_key}) == "0"; }, 5s));
  EXPECT_EQ(a->Get(path).header("x-cache"), "HIT");
}

TEST_F(CacheTierTest, ACorruptRecordIsAMissThenAHit) {
  auto a = StartNode("a");
  const std::string path = "/api/primes/" + std::to_string(4000 + ::getpid() % 1000);
  redis_->Cli({"SET", kKeyPrefix + path, "this is not a cache record"});
  HttpResponse miss = a->Get(path);
  ASSERT_EQ(miss.status, 200);
  EXPECT_EQ(miss.header("x-cache"), "MISS");
  EXPECT_EQ(a->Metric("webnode_cache_corrupt_records_total"), 1);
  HttpResponse hit = a->Get(path);
  EXPECT_EQ(hit.header("x-cache"), "HIT");
  EXPECT_EQ(hit.body, miss.body);
}

TEST_F(CacheTierTest, PurgeNeedsTheAdminToken) {
  auto a = StartNode("a", {"--admin-token", "s3cret"});
  auto b = StartNode("b");  // no token configured
  const std::string path = "/api/sleep/1?" + Unique("p=");
  const std::string purge = "/admin/purge?path=" + path.substr(0, path.find('?')) + "%3F" + path.substr(path.find('?') + 1);
  a->Get(path);
  EXPECT_EQ(a->Get(path).header("x-cache"), "HIT");
  EXPECT_EQ(HttpRequest("POST", a->admin_url(purge)).status, 401);
  EXPECT_EQ(HttpRequest("POST", a->admin_url(purge), {"Authorization: Bearer wrong"}).status, 401);
  EXPECT_EQ(HttpRequest("POST", b->admin_url(purge), {"Authorization: Bearer s3cret"}).status, 403);
  EXPECT_EQ(b->Get(path).header("x-cache"), "HIT");  // nothing was purged
  HttpResponse ok = HttpRequest("POST", a->admin_url(purge), {"Authorization: Bearer s3cret"});
  EXPECT_EQ(ok.status, 200) << ok.body;
  // Gone for every node: from Redis at once, from b's hot copy when b hears the
  // purge announcement (milliseconds; RedisSubscriberTest covers delivery) or,
  // at the latest, when its 1 s hot window ends.
  EXPECT_TRUE(WaitFor([&] { return b->Get(path).header("x-cache") == "MISS"; }, 2s));
}

TEST_F(CacheTierTest, StaleIsServedWhenTheOriginFails) {
  TestOrigin upstream;
  upstream.Set("/flaky", {Response{200, {{"Cache-Control", "max-age=1, stale-while-revalidate=0, stale-if-error=60"}}, "good"}});
  auto a = StartNode("a", {"--origin", upstream.url()});
  EXPECT_EQ(a->Get("/flaky").header("x-cache"), "MISS");
  std::this_thread::sleep_for(1100ms);
  upstream.SetFailing(true);
  HttpResponse stale = a->Get("/flaky");
  EXPECT_EQ(stale.status, 200);
  EXPECT_EQ(stale.header("x-cache"), "STALE");
  EXPECT_EQ(stale.body, "good");
  EXPECT_EQ(upstream.Hits("/flaky"), 2);  // it did try the origin
  EXPECT_EQ(a->Metric("webnode_cache_stale_if_error_total"), 1);
  // Without a stale copy the failure goes through.
  EXPECT_EQ(a->Get("/never-cached").status, 503);
}

TEST_F(CacheTierTest, ASlowMissDoesNotStallHitsOnOtherConnections) {
  auto a = StartNode("a", {"--threads", "1"});
  const std::string cached = "/api/primes/" + std::to_string(3000 + ::getpid() % 1000);
  a->Get(cached);
  std::vector<std::future<HttpResponse>> slow;
  for (int i = 0; i < 8; ++i) {
    const std::string path = "/api/sleep/2000?" + Unique("s=");
    slow.push_back(std::async(std::launch::async, [&a, path] { return a->Get(path); }));
  }
  std::this_thread::sleep_for(200ms);  // the slow misses are in flight
  for (int i = 0; i < 10; ++i) {
    auto start = std::chrono::steady_clock::now();
    HttpResponse hit = a->Get(cached);
    auto took = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(hit.header("x-cache"), "HIT");
    EXPECT_LT(took, 500ms);  // a stalled hit would wait for a 2 s miss
  }
  for (auto& f : slow) EXPECT_EQ(f.get().status, 200);
}

TEST_F(CacheTierTest, ClientsThatGiveUpBeforeTheAnswerDoNotHurtTheNode) {
  auto a = StartNode("a");
  // The origin takes 2 s, the clients give up after 50 ms: however late a
  // loaded machine starts the last client thread, the shared key's answer
  // is not stored yet, so every client leaves before its answer.
  const std::string shared = "/api/sleep/2000?" + Unique("shared=");
  std::vector<std::future<HttpResponse>> gone;
  for (int i = 0; i < 20; ++i) {
    // Half share one key (coalesced waiters), half have their own.
    const std::string path = i % 2 == 0 ? shared : "/api/sleep/2000?" + Unique("g=");
    gone.push_back(std::async(std::launch::async, [&a, path] { return a->Request("GET", path, {}, "", 50ms); }));
  }
  for (auto& f : gone) EXPECT_EQ(f.get().status, 0);  // the client timed out and closed
  // The answers go to closed connections; the node lives on and stored the
  // shared one for the next client.
  HttpResponse r;
  EXPECT_TRUE(WaitFor([&] {
    r = a->Get(shared);
    return r.status == 200 && r.header("x-cache") == "HIT";
  }, 10s)) << r.status << " " << r.header("x-cache");
  EXPECT_TRUE(a->process().running());
}

}  // namespace
}  // namespace webtier::cache
