// The balancer's edge cache end to end: real ZooKeeper, Redis, two webnodes
// in front of an in-process origin, and two balancer processes with
// --edge-cache-bytes following the tier's invalidation channel on Redis.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "test_origin.h"
#include "webtier/cache/hot_cache.h"
#include "webtier/testing/h2_client.h"
#include "webtier/testing/harness.h"
#include "webtier/testing/load.h"

namespace webtier::cache {
namespace {

using namespace std::chrono_literals;
using namespace webtier::testing;
using webtier::cache::testing::TestOrigin;

constexpr char kZkPath[] = "/webtier/edge-test";
constexpr char kToken[] = "edge-token";
// The window under test: how long an edge copy may go without the tier.
constexpr auto kWindow = 2000ms;
// The site every request is for, as the clients of both balancers name it.
constexpr char kHostField[] = "Host: edge.test";

bool EdgeHit(const H2Client::Response& r) {
  const auto [first, last] = r.headers.equal_range("cache-status");
  return std::any_of(first, last, [](const auto& f) { return f.second.find("webtier-edge; hit") != std::string::npos; });
}

bool EdgeHit(const HttpResponse& r) {
  return r.status == 200 && r.header("cache-status").find("webtier-edge; hit") != std::string::npos;
}

class EdgeCacheTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    zk_ = new ZooKeeperServer();
    zk_->Start();
    redis_ = new RedisServer();
    redis_->Start();
    origin_ = new TestOrigin();
    for (const char* id : {"ea", "eb"}) {
      nodes_.push_back(new Webnode(id, zk_->connect(),
                                   {"--zk-path", kZkPath, "--redis", redis_->address(), "--origin", origin_->url(),
                                    "--admin-token", kToken}));
      nodes_.back()->WaitHealthy();
    }
    for (int i = 0; i < 2; ++i) {
      balancers_.push_back(new Balancer(zk_->connect(), kZkPath,
                                        {"--edge-cache-bytes", "67108864", "--edge-cache-window-ms",
                                         std::to_string(kWindow.count()), "--edge-redis", redis_->address(),
                                         "--health-interval-ms", "200"}));
    }
    for (Balancer* b : balancers_) {
      const auto deadline = std::chrono::steady_clock::now() + 20s;
      while (b->HealthyCount() < 2 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(50ms);
      ASSERT_EQ(b->HealthyCount(), 2) << b->StatusBody();
      // The invalidation channel is followed before anything is asserted.
      while (MetricValue(b->Metrics(), "balancer_edge_cache_invalidation_channel").value_or(0) != 1 &&
             std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(50ms);
      }
    }
  }
  static void TearDownTestSuite() {
    for (Balancer* b : balancers_) delete b;
    for (Webnode* n : nodes_) delete n;
    balancers_.clear();
    nodes_.clear();
    delete origin_;
    delete redis_;
    delete zk_;
  }

  static HttpResponse Get(int balancer, const std::string& path, std::vector<std::string> headers = {}) {
    headers.insert(headers.begin(), kHostField);
    return HttpRequest("GET", balancers_[balancer]->url(path), headers);
  }
  static double Metric(int balancer, const std::string& name, const std::map<std::string, std::string>& labels = {}) {
    return MetricValue(balancers_[balancer]->Metrics(), name, labels).value_or(0);
  }
  static std::string Unique(const std::string& prefix) {
    static std::atomic<int> n{0};
    return prefix + std::to_string(::getpid()) + "-" + std::to_string(++n);
  }
  static void Serve(const std::string& path, const std::string& body, Headers extra = {}) {
    TestOrigin::Canned canned;
    canned.response.status = 200;
    canned.response.headers = {{"Cache-Control", "public, max-age=300"}, {"Content-Type", "text/plain"}};
    canned.response.headers.insert(canned.response.headers.end(), extra.begin(), extra.end());
    canned.response.body = body;
    origin_->Set(path, canned);
  }
  // GETs `path` on `balancer` until the edge answers it (the first fills the tier, the next the
  // edge; for kHotCopyWindow after the balancer subscribed to the channel, or erased the URL, the
  // edge keeps nothing of it).
  static void WarmEdge(int balancer, const std::string& path) {
    for (auto deadline = std::chrono::steady_clock::now() + kHotCopyWindow + 3s;
         std::chrono::steady_clock::now() < deadline;) {
      if (EdgeHit(Get(balancer, path))) return;
      std::this_thread::sleep_for(20ms);
    }
    FAIL() << "never an edge hit on balancer " << balancer << " for " << path;
  }

  // GETs `path` on each balancer until it answers `body`, within the documented bound (twice the
  // window, plus slack).
  static void ExpectEveryBalancerReaches(const std::string& path, const std::string& body) {
    for (int b = 0; b < static_cast<int>(balancers_.size()); ++b) {
      std::string got;
      for (auto deadline = std::chrono::steady_clock::now() + 2 * kWindow + 2s;
           std::chrono::steady_clock::now() < deadline && got != body;) {
        got = Get(b, path).body;
      }
      EXPECT_EQ(got, body) << "balancer " << b;
    }
  }

  static ZooKeeperServer* zk_;
  static RedisServer* redis_;
  static TestOrigin* origin_;
  static std::vector<Webnode*> nodes_;
  static std::vector<Balancer*> balancers_;
};

ZooKeeperServer* EdgeCacheTest::zk_ = nullptr;
RedisServer* EdgeCacheTest::redis_ = nullptr;
TestOrigin* EdgeCacheTest::origin_ = nullptr;
std::vector<Webnode*> EdgeCacheTest::nodes_;
std::vector<Balancer*> EdgeCacheTest::balancers_;

TEST_F(EdgeCacheTest, HitsAreAnsweredWithoutAnyMember) {
  const std::string path = Unique("/edge/hit-");
  Serve(path, "v1");
  const HttpResponse miss = Get(0, path);
  ASSERT_EQ(miss.status, 200) << miss.error;
  EXPECT_NE(miss.header("cache-status").find("webtier-edge; fwd=uri-miss"), std::string::npos)
      << miss.header("cache-status");
  WarmEdge(0, path);
  // Every member frozen: the edge still answers, within its window.
  for (Webnode* n : nodes_) ::kill(n->process().pid(), SIGSTOP);
  const HttpResponse hit = HttpRequest("GET", balancers_[0]->url(path), {kHostField}, "", 1000ms);
  const HttpResponse head = HttpRequest("HEAD", balancers_[0]->url(path), {kHostField}, "", 1000ms);
  for (Webnode* n : nodes_) ::kill(n->process().pid(), SIGCONT);
  ASSERT_TRUE(EdgeHit(hit)) << hit.status << " " << hit.error << " " << hit.header("cache-status");
  EXPECT_EQ(hit.body, "v1");
  EXPECT_EQ(hit.header("x-cache"), "HIT");
  EXPECT_NE(hit.header("age"), "");
  EXPECT_EQ(hit.header("x-request-id").size(), 32u);
  EXPECT_TRUE(EdgeHit(head));
  EXPECT_EQ(head.body, "");
  EXPECT_EQ(head.header("content-length"), "2");
  EXPECT_EQ(origin_->Hits(path), 1);
  // HTTP/2 clients get the same object.
  H2Client h2(balancers_[0]->port());
  ASSERT_TRUE(h2.ok()) << h2.error();
  H2Client::Response r;
  for (int i = 0; i < 3 && !EdgeHit(r); ++i) {
    const int32_t id = h2.Submit("GET", path, {}, "", "edge.test");
    ASSERT_TRUE(h2.WaitAll());
    r = h2.response(id);
  }
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "v1");
  EXPECT_TRUE(EdgeHit(r)) << [&] {
    std::string all;
    for (const auto& [name, value] : r.headers) all += name + ": " + value + "\n";
    return all;
  }();
  EXPECT_GE(Metric(0, "balancer_edge_cache_requests_total", {{"result", "hit"}}), 3);
  // The status document and page show the edge cache.
  const nlohmann::json status = nlohmann::json::parse(balancers_[0]->StatusBody());
  const nlohmann::json& edge = status["edge_cache"];
  EXPECT_TRUE(edge["enabled"].get<bool>()) << edge;
  EXPECT_TRUE(edge["invalidation_channel"].get<bool>()) << edge;
  EXPECT_GT(edge["objects"].get<int>(), 0) << edge;
  EXPECT_GT(edge["hit_ratio"].get<double>(), 0) << edge;
  EXPECT_LE(edge["bytes"].get<uint64_t>(), edge["capacity_bytes"].get<uint64_t>()) << edge;
  if (::access("/usr/bin/chromium", X_OK) == 0) {
    const std::string dom = RenderedDom(balancers_[0]->admin_url("/"));
    const size_t box = dom.find("<b id=\"edge\">");
    ASSERT_NE(box, std::string::npos) << dom.substr(0, 2000);
    EXPECT_NE(dom.find("%", box), std::string::npos);
  }
}

TEST_F(EdgeCacheTest, APurgeThroughOneBalancerEmptiesEveryEdgeUnderLoad) {
  const std::string path = Unique("/edge/purge-");
  Serve(path, "v1");
  WarmEdge(0, path);
  WarmEdge(1, path);
  std::vector<std::unique_ptr<LoadGenerator>> loads;
  for (Balancer* b : balancers_) {
    loads.push_back(std::make_unique<LoadGenerator>(
        LoadGenerator::Options{.port = b->port(), .paths = {path}, .threads = 2, .rate_per_sec = 400}));
    loads.back()->Start();
  }
  std::this_thread::sleep_for(300ms);
  const double invalidated_before = Metric(1, "balancer_edge_cache_invalidations_total");
  Serve(path, "v2");
  const auto purged_at = std::chrono::steady_clock::now();
  const HttpResponse purge = HttpRequest("POST", balancers_[0]->admin_url("/admin/purge?path=" + path),
                                         {"Authorization: Bearer " + std::string(kToken)});
  ASSERT_EQ(purge.status, 200) << purge.body;
  // Balancer 0 erased its copy before answering the purge, and keeps none of
  // what the load fetches meanwhile: the other webnode may give out its hot
  // copy of v1 until it hears of the purge (milliseconds), and kept here that
  // v1 would outlive the purge by its whole max-age.
  const HttpResponse first = Get(0, path);
  EXPECT_FALSE(EdgeHit(first)) << first.body << " " << first.header("cache-status");
  // Balancer 1 hears it on the channel; both then answer v2 from the tier.
  std::string body;
  while (std::chrono::steady_clock::now() - purged_at < 2 * kWindow + 2s) {
    body = Get(1, path).body;
    if (body == "v2") break;
    std::this_thread::sleep_for(5ms);
  }
  const auto reached = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - purged_at);
  EXPECT_EQ(body, "v2");
  // The documented bound (docs/cache.md, "The edge cache"): the window twice over, even if the
  // announcement were lost; with the channel it is the time the announcement takes.
  EXPECT_LE(reached, 2 * kWindow) << "purge reached the other balancer after " << reached.count() << " ms";
  EXPECT_GT(Metric(1, "balancer_edge_cache_invalidations_total"), invalidated_before)
      << "the other balancer's copy went through the invalidation channel";
  std::cout << "purge reached the other balancer's edge cache in " << reached.count() << " ms under load\n";
  // From then on neither balancer gives out v1 again, past the tier's hot-copy window and with
  // the edge keeping v2 again.
  int old_answers = 0, edge_v2 = 0;
  for (auto until = purged_at + kHotCopyWindow + 1s; std::chrono::steady_clock::now() < until;) {
    for (int b = 0; b < 2; ++b) {
      const HttpResponse r = Get(b, path);
      if (r.body == "v1") ++old_answers;
      if (r.body == "v2" && EdgeHit(r)) ++edge_v2;
    }
    std::this_thread::sleep_for(20ms);
  }
  for (auto& load : loads) load->Stop();
  EXPECT_EQ(old_answers, 0) << "v1 came back after both balancers had answered v2";
  EXPECT_GT(edge_v2, 0) << "the edge keeps the new answer once the tier settled";
  for (auto& load : loads) {
    const LoadStats s = load->Snapshot();
    EXPECT_EQ(s.failed, 0u) << s.Describe();
    EXPECT_GT(s.ok, 100u);
  }
}

TEST_F(EdgeCacheTest, AnUnsafeRequestInvalidatesBeforeItsAnswer) {
  const std::string path = Unique("/edge/unsafe-");
  Serve(path, "v1");
  WarmEdge(0, path);
  WarmEdge(1, path);
  Serve(path, "v2");
  const HttpResponse post = HttpRequest("POST", balancers_[0]->url(path), {kHostField, "Content-Type: text/plain"}, "x");
  ASSERT_EQ(post.status, 200) << post.error;
  // The next GET through the same balancer cannot be its old copy (the other webnode's hot copy
  // may still be, for the milliseconds until it hears of the invalidation).
  const HttpResponse after = Get(0, path);
  EXPECT_FALSE(EdgeHit(after)) << after.header("cache-status");
  // Both balancers answer v2, the other one having heard of it from the tier.
  ExpectEveryBalancerReaches(path, "v2");
}

TEST_F(EdgeCacheTest, WithoutTheChannelTheWindowBoundsAPurge) {
  Balancer alone(zk_->connect(), kZkPath,
                 {"--edge-cache-bytes", "1048576", "--edge-cache-window-ms", std::to_string(kWindow.count())});
  for (auto deadline = std::chrono::steady_clock::now() + 20s;
       alone.HealthyCount() < 2 && std::chrono::steady_clock::now() < deadline;) {
    std::this_thread::sleep_for(50ms);
  }
  const std::string path = Unique("/edge/window-");
  Serve(path, "v1");
  auto get = [&] { return HttpRequest("GET", alone.url(path), {kHostField}); };
  for (int i = 0; i < 10 && !EdgeHit(get()); ++i) {
  }
  ASSERT_TRUE(EdgeHit(get()));
  Serve(path, "v2");
  // Purged at a node directly: no balancer is told.
  const auto purged_at = std::chrono::steady_clock::now();
  const HttpResponse purge = HttpRequest("POST", nodes_[0]->admin_url("/admin/purge?path=" + path),
                                         {"Authorization: Bearer " + std::string(kToken)});
  ASSERT_EQ(purge.status, 200) << purge.body;
  std::string body = get().body;
  EXPECT_EQ(body, "v1") << "the edge copy outlives an unannounced purge, up to its window";
  while (body != "v2" && std::chrono::steady_clock::now() - purged_at < 3 * kWindow) {
    std::this_thread::sleep_for(20ms);
    body = get().body;
  }
  const auto reached = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - purged_at);
  EXPECT_EQ(body, "v2");
  EXPECT_LE(reached, 2 * kWindow);
  std::cout << "an unannounced purge reached the edge cache in " << reached.count() << " ms (window "
            << kWindow.count() << " ms)\n";
}

// The balancer needs nothing of Redis but the invalidation channel: the ACL
// user the deploy flavours give it (deploy/compose-secrets.sh) may only
// SUBSCRIBE to webtier:purge and PING. Authenticated as such a user it
// follows the channel and a purge reaches it; as a user without that channel
// it never subscribes, says so in one warning, and the window bounds its
// copies as without --edge-redis.
TEST_F(EdgeCacheTest, ABalancerAsASubscribeOnlyAclUserFollowsTheChannel) {
  const std::string user = Unique("edge-");
  const std::string wrong = Unique("edge-wrong-");
  ASSERT_EQ(redis_->Cli({"ACL", "SETUSER", user, "on", ">edge-secret", "resetchannels", "&webtier:purge", "resetkeys",
                         "-@all", "+subscribe", "+ping"}),
            "OK");
  ASSERT_EQ(redis_->Cli({"ACL", "SETUSER", wrong, "on", ">edge-secret", "resetchannels", "&elsewhere", "resetkeys",
                         "-@all", "+subscribe", "+ping"}),
            "OK");
  // What the user may not do (so the test below shows the balancer needs no more).
  EXPECT_NE(redis_->Cli({"--user", user, "--pass", "edge-secret", "--no-auth-warning", "GET", "x"}).find("NOPERM"),
            std::string::npos);
  TempDir dir("edge-acl");
  const std::string password_file = dir.path() + "/edge-redis-password";
  std::ofstream(password_file) << "edge-secret\n";
  auto start = [&](const std::string& as) {
    auto b = std::make_unique<Balancer>(
        zk_->connect(), kZkPath,
        std::vector<std::string>{"--edge-cache-bytes", "1048576", "--edge-cache-window-ms",
                                 std::to_string(kWindow.count()), "--edge-redis", redis_->address(),
                                 "--edge-redis-user", as, "--edge-redis-password-file", password_file});
    for (auto deadline = std::chrono::steady_clock::now() + 20s;
         b->HealthyCount() < 2 && std::chrono::steady_clock::now() < deadline;) {
      std::this_thread::sleep_for(50ms);
    }
    return b;
  };
  auto following = [](Balancer& b, std::chrono::milliseconds wait) {
    for (auto deadline = std::chrono::steady_clock::now() + wait;;) {
      if (MetricValue(b.Metrics(), "balancer_edge_cache_invalidation_channel").value_or(0) == 1) return true;
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(50ms);
    }
  };

  std::unique_ptr<Balancer> b = start(user);
  ASSERT_TRUE(following(*b, 10s)) << b->process().Log();
  const std::string path = Unique("/edge/acl-");
  Serve(path, "v1");
  auto get = [&](Balancer& on) { return HttpRequest("GET", on.url(path), {kHostField}); };
  for (auto deadline = std::chrono::steady_clock::now() + kHotCopyWindow + 3s;
       !EdgeHit(get(*b)) && std::chrono::steady_clock::now() < deadline;) {
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(EdgeHit(get(*b)));
  Serve(path, "v2");
  const auto purged_at = std::chrono::steady_clock::now();
  const HttpResponse purge = HttpRequest("POST", nodes_[0]->admin_url("/admin/purge?path=" + path),
                                         {"Authorization: Bearer " + std::string(kToken)});
  ASSERT_EQ(purge.status, 200) << purge.body;
  std::string body = get(*b).body;
  while (body != "v2" && std::chrono::steady_clock::now() - purged_at < kWindow) body = get(*b).body;
  const auto reached = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - purged_at);
  EXPECT_EQ(body, "v2");
  EXPECT_LT(reached, kWindow) << "the purge came by the channel, not by the window";
  EXPECT_EQ(b->process().Log().find("edge-secret"), std::string::npos) << "no secret in the log";

  std::unique_ptr<Balancer> denied = start(wrong);
  EXPECT_FALSE(following(*denied, 2s));
  const std::string log = denied->process().Log();
  EXPECT_NE(log.find("purge channel: cannot subscribe"), std::string::npos) << log;
  EXPECT_NE(log.find("NOPERM"), std::string::npos) << log;
  size_t warnings = 0;
  for (size_t at = log.find("cannot subscribe"); at != std::string::npos; at = log.find("cannot subscribe", at + 1)) {
    ++warnings;
  }
  EXPECT_EQ(warnings, 1u) << "one warning, not one per retry:\n" << log;
}

TEST_F(EdgeCacheTest, ATagPurgeReachesTheEdge) {
  const std::string path = Unique("/edge/tag-");
  const std::string tag = Unique("t");
  Serve(path, "v1", {{"Surrogate-Key", "other " + tag}});
  WarmEdge(0, path);
  WarmEdge(1, path);
  Serve(path, "v2", {{"Surrogate-Key", tag}});
  const HttpResponse purge = HttpRequest("POST", balancers_[1]->admin_url("/admin/purge?tag=" + tag),
                                         {"Authorization: Bearer " + std::string(kToken)});
  ASSERT_EQ(purge.status, 200) << purge.body;
  ExpectEveryBalancerReaches(path, "v2");
}

TEST_F(EdgeCacheTest, CredentialsPrivateAndNoStoreAnswersPassThrough) {
  const std::string path = Unique("/edge/pass-");
  Serve(path, "v1");
  WarmEdge(0, path);
  // A request with credentials or its own no-cache goes to the tier, as it came.
  for (const char* field : {"Authorization: Bearer x", "Cookie: a=b", "Cache-Control: no-cache"}) {
    const HttpResponse r = Get(0, path, {field});
    EXPECT_EQ(r.status, 200);
    EXPECT_FALSE(EdgeHit(r)) << field;
  }
  for (const char* cc : {"private, max-age=60", "no-store", "no-cache", "max-age=0"}) {
    const std::string p = Unique("/edge/never-");
    TestOrigin::Canned canned;
    canned.response.headers = {{"Cache-Control", cc}, {"ETag", "\"e\""}};
    canned.response.body = "n";
    origin_->Set(p, canned);
    for (int i = 0; i < 3; ++i) {
      const HttpResponse r = Get(0, p);
      EXPECT_EQ(r.status, 200);
      EXPECT_FALSE(EdgeHit(r)) << cc;
    }
  }
  // Set-Cookie answers are never shared either.
  const std::string p = Unique("/edge/cookie-");
  Serve(p, "c", {{"Set-Cookie", "s=1"}});
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(EdgeHit(Get(0, p)));
}

TEST_F(EdgeCacheTest, VariantsAreServedToTheRequestsTheyMatch) {
  const std::string path = Unique("/edge/vary-");
  TestOrigin::Canned canned;
  canned.response.headers = {{"Cache-Control", "public, max-age=300"}, {"Vary", "Accept-Language"}};
  canned.echo = "Accept-Language";
  canned.response.body = "lang:";
  origin_->Set(path, canned);
  for (const std::string lang : {"en", "fr", "en", "fr", "en", "fr"}) {
    const HttpResponse r = Get(0, path, {"Accept-Language: " + lang});
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "lang:" + lang);
  }
  // Both variants end up in the edge, each served to its own requests.
  for (const std::string lang : {"en", "fr"}) {
    HttpResponse r;
    for (auto deadline = std::chrono::steady_clock::now() + kHotCopyWindow + 3s;
         std::chrono::steady_clock::now() < deadline;) {
      r = Get(0, path, {"Accept-Language: " + lang});
      EXPECT_EQ(r.body, "lang:" + lang);
      if (EdgeHit(r)) break;
      std::this_thread::sleep_for(20ms);
    }
    EXPECT_TRUE(EdgeHit(r)) << lang;
  }
  const HttpResponse de = Get(0, path, {"Accept-Language: de"});
  EXPECT_FALSE(EdgeHit(de));
  EXPECT_EQ(de.body, "lang:de");
}

// Last: it freezes the suite's Redis for a while.
TEST_F(EdgeCacheTest, AFrozenChannelIsNoticedAndTheWindowComesBack) {
  const std::string path = Unique("/edge/frozen-");
  Serve(path, "v1");
  WarmEdge(0, path);
  auto channel = [] { return Metric(0, "balancer_edge_cache_invalidation_channel"); };
  ASSERT_EQ(channel(), 1);
  // Frozen, not closed: the subscription's connection stays open and silent.
  redis_->Signal(SIGSTOP);
  const auto frozen_at = std::chrono::steady_clock::now();
  while (channel() == 1 && std::chrono::steady_clock::now() - frozen_at < 10s) std::this_thread::sleep_for(50ms);
  const auto noticed = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - frozen_at);
  EXPECT_EQ(channel(), 0);
  EXPECT_LE(noticed, 3s) << "a PING after 1 s of silence, 1 s for its answer";
  std::cout << "a frozen Redis was noticed by the edge cache's subscription in " << noticed.count() << " ms\n";
  // The window applies again: past it, the object goes back to the tier.
  std::this_thread::sleep_for(kWindow);
  const HttpResponse overdue = Get(0, path);
  EXPECT_EQ(overdue.status, 200);
  EXPECT_FALSE(EdgeHit(overdue)) << overdue.header("cache-status");
  redis_->Signal(SIGCONT);
  for (auto deadline = std::chrono::steady_clock::now() + 10s;
       channel() != 1 && std::chrono::steady_clock::now() < deadline;) {
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(channel(), 1) << "subscribed again";
}

}  // namespace
}  // namespace webtier::cache
