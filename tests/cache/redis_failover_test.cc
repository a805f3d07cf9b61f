// Redis failover under Sentinel against real processes: a primary, a replica
// and 3 Sentinels (testing::RedisSentinels). First the library
// (SentinelMaster + RedisStore), then webnode processes started with
// --redis-sentinel: discovery, the master SIGKILLed under load, the old
// master returning as a replica, Sentinel unreachable at start.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "webtier/cache/redis_store.h"
#include "webtier/cache/sentinel.h"
#include "webtier/testing/harness.h"
#include "webtier/testing/load.h"
#include "webtier/testing/redis_sentinel.h"

#include <nlohmann/json.hpp>

namespace webtier::cache {
namespace {

using namespace std::chrono_literals;
using namespace webtier::testing;

// hiredis writes with write(2): a killed master must not kill the test.
const bool kSigpipeIgnored = [] {
  ::signal(SIGPIPE, SIG_IGN);
  return true;
}();

SentinelOptions OptionsFor(const RedisSentinels& set) {
  SentinelOptions o;
  for (int i = 0; i < 3; ++i) o.sentinels.push_back({"127.0.0.1", set.sentinel_port(i)});
  o.master_name = set.master_name();
  return o;
}

net::HostPort AddressOf(RedisServer& s) { return {"127.0.0.1", s.port()}; }

std::string CurrentOf(const RedisMaster& m) { return m.Describe(); }

// ---------------------------------------------------------------- library

TEST(SentinelMasterTest, FindsTheMasterEvenWithTheFirstSentinelDown) {
  RedisSentinels set;
  set.Start();
  set.KillSentinel(0);
  SentinelAnswer answer;
  ASSERT_TRUE(AskSentinels(OptionsFor(set), &answer).ok());
  EXPECT_EQ(answer.master, AddressOf(set.server(0)));
  EXPECT_EQ(answer.config_epoch, 0u);  // no failover yet

  SentinelOptions unknown = OptionsFor(set);
  unknown.master_name = "not-monitored";
  EXPECT_EQ(AskSentinels(unknown, &answer).code(), ErrorCode::kUnavailable);

  auto followed = std::make_shared<SentinelMaster>(OptionsFor(set));
  ASSERT_TRUE(WaitFor([&] { return CurrentOf(*followed) == AddressOf(set.server(0)).ToString(); }, 5s));
  RedisStore store({.master = followed});
  ASSERT_TRUE(store.Put("k", "on-the-master", 60s).ok());
  EXPECT_EQ(set.server(0).Cli({"GET", "k"}), "on-the-master");
  EXPECT_EQ(followed->failovers(), 0u);
}

// A master demoted while alive (SENTINEL FAILOVER). Sentinel turns the old
// master into a replica only at its next INFO poll (up to 10 s later): until
// then it is a writable master with stale data. Once the store has followed
// the switch, nothing more reaches it; pooled connections to it are retired.
TEST(SentinelMasterTest, AManualFailoverIsFollowedAndTheFormerMasterGetsNoMoreWrites) {
  RedisSentinels set;
  set.Start();
  auto followed = std::make_shared<SentinelMaster>(OptionsFor(set));
  ASSERT_TRUE(WaitFor([&] { return followed->subscribed() && CurrentOf(*followed) != "unknown"; }, 5s));
  RedisStore store({.master = followed});
  // Pool a few connections to the first master.
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&, t] { EXPECT_TRUE(store.Put("before-" + std::to_string(t), "v", 60s).ok()); });
  }
  for (auto& w : writers) w.join();
  ASSERT_TRUE(set.WaitReplicated());

  ASSERT_EQ(RedisCli(set.sentinel_port(0), {"SENTINEL", "FAILOVER", set.master_name()}), "OK");
  ASSERT_TRUE(WaitFor([&] { return CurrentOf(*followed) == AddressOf(set.server(1)).ToString(); }, 15s))
      << "still at " << CurrentOf(*followed);
  EXPECT_EQ(followed->failovers(), 1u);
  SentinelAnswer answer;
  ASSERT_TRUE(AskSentinels(OptionsFor(set), &answer).ok());
  EXPECT_EQ(answer.master, AddressOf(set.server(1)));
  EXPECT_GT(answer.config_epoch, 0u);
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(store.Put("after-" + std::to_string(i), "v2", 60s).ok());
  EXPECT_EQ(set.server(1).Cli({"GET", "after-0"}), "v2");
  EXPECT_EQ(set.server(1).Cli({"GET", "before-0"}), "v");  // it reached the replica before the switch
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(set.server(0).Cli({"EXISTS", "after-" + std::to_string(i)}), "0") << "written to the former master";
  }
}

// Sentinels with requirepass: asked with --redis-sentinel-password's value,
// both for the master and on the +switch-master subscription; without it or
// with a wrong one the answer says why. The Redis servers keep no password
// here: the two are separate (--redis-password is the servers').
TEST(SentinelMasterTest, SentinelsWithAPasswordAreAskedWithIt) {
  RedisSentinels set({.password = "sentinel-secret"});
  set.Start();
  SentinelOptions with = OptionsFor(set);
  with.password = "sentinel-secret";
  SentinelAnswer answer;
  ASSERT_TRUE(AskSentinels(with, &answer).ok());
  EXPECT_EQ(answer.master, AddressOf(set.server(0)));

  Status none = AskSentinels(OptionsFor(set), &answer);
  EXPECT_EQ(none.code(), ErrorCode::kUnavailable);
  EXPECT_NE(none.message().find("NOAUTH"), std::string::npos) << none.message();
  SentinelOptions wrong = OptionsFor(set);
  wrong.password = "not-it";
  Status refused = AskSentinels(wrong, &answer);
  EXPECT_EQ(refused.code(), ErrorCode::kUnavailable);
  EXPECT_NE(refused.message().find("auth"), std::string::npos) << refused.message();

  auto followed = std::make_shared<SentinelMaster>(with);
  ASSERT_TRUE(WaitFor([&] { return followed->subscribed() && CurrentOf(*followed) == AddressOf(set.server(0)).ToString(); }, 5s));
  ASSERT_EQ(RedisCli(set.sentinel_port(0), {"SENTINEL", "FAILOVER", set.master_name()}, "sentinel-secret"), "OK");
  ASSERT_TRUE(WaitFor([&] { return CurrentOf(*followed) == AddressOf(set.server(1)).ToString(); }, 15s))
      << "still at " << CurrentOf(*followed);
  EXPECT_EQ(followed->failovers(), 1u);
}

// One real Sentinel told to monitor `port` as master `name` (quorum 1): a
// Sentinel that names the wrong server, as a stale or tampered one would.
// Its down-after is long, so it never tries a failover during a test.
class LoneSentinel {
 public:
  LoneSentinel(uint16_t port, const std::string& name) : dir_("webtier-lone-sentinel"), port_(FreePort()) {
    RequireInstalled("/usr/bin/redis-sentinel");
    const std::string conf = dir_.path() + "/sentinel.conf";
    std::ofstream(conf) << "port " << port_ << "\nbind 127.0.0.1\ndaemonize no\nlogfile \"\"\n"
                        << "dir " << dir_.path() << "\n"
                        << "sentinel monitor " << name << " 127.0.0.1 " << port << " 1\n"
                        << "sentinel down-after-milliseconds " << name << " 600000\n";
    proc_ = std::make_unique<Process>(Process::Options{
        .argv = {"/usr/bin/redis-sentinel", conf}, .env = {}, .log_path = dir_.path() + "/sentinel.log", .cwd = {}});
    if (!WaitFor([&] { return RedisCli(port_, {"SENTINEL", "get-master-addr-by-name", name}).find(
                                  std::to_string(port)) != std::string::npos; },
                 10s))
      throw std::runtime_error("the lone sentinel did not start: " + proc_->Log());
  }
  uint16_t port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  TempDir dir_;
  uint16_t port_;
  std::unique_ptr<Process> proc_;
};

// A primary and its replica, the replica linked.
void StartPrimaryAndReplica(RedisServer& primary, RedisServer& replica) {
  primary.Start();
  replica.Start();
  replica.Cli({"REPLICAOF", "127.0.0.1", std::to_string(primary.port())});
  ASSERT_TRUE(WaitFor([&] { return replica.Cli({"ROLE"}).rfind("slave", 0) == 0; }, 10s));
}

// A Sentinel naming a replica as the master: its answer is asked again and
// again but never used (ROLE says slave), so nothing is read from or written
// there and the store bypasses; once the server itself is a master, the same
// answer is taken.
TEST(SentinelMasterTest, ASentinelNamingAReplicaIsNotFollowedUntilTheServerSaysMaster) {
  RedisServer primary, replica;
  StartPrimaryAndReplica(primary, replica);
  LoneSentinel liar(replica.port(), "webtier");
  SentinelOptions o;
  o.sentinels = {{"127.0.0.1", liar.port()}};
  SentinelAnswer answer;
  ASSERT_TRUE(AskSentinels(o, &answer).ok());
  ASSERT_EQ(answer.master, AddressOf(replica)) << "the Sentinel does name the replica";

  auto followed = std::make_shared<SentinelMaster>(o);
  ASSERT_TRUE(WaitFor([&] { return followed->rejected() >= 3; }, 5s)) << "asked again after a rejection";
  EXPECT_EQ(CurrentOf(*followed), "unknown");
  RedisStore store({.master = followed});
  EXPECT_EQ(store.Put("k", "v", 60s).code(), ErrorCode::kUnavailable);
  EXPECT_EQ(replica.Cli({"EXISTS", "k"}), "0");
  EXPECT_EQ(followed->failovers(), 0u);

  replica.Cli({"REPLICAOF", "NO", "ONE"});
  ASSERT_TRUE(WaitFor([&] { return CurrentOf(*followed) == AddressOf(replica).ToString(); }, 5s));
  ASSERT_TRUE(store.Put("k", "v", 60s).ok());
  EXPECT_EQ(replica.Cli({"GET", "k"}), "v");
  EXPECT_EQ(primary.Cli({"EXISTS", "k"}), "0");
}

// ---------------------------------------------------------------- webnodes

// One webnode following the Sentinels of `set`. ZooKeeper is a port nothing
// listens on: registration is not what these tests are about, and the node
// serves without it.
std::unique_ptr<Webnode> SentinelNode(const std::string& id, const RedisSentinels& set,
                                      std::vector<std::string> extra = {}) {
  std::vector<std::string> args{"--redis", "127.0.0.1:1", "--redis-sentinel", set.sentinel_list(),
                                "--redis-master-name", set.master_name()};
  args.insert(args.end(), extra.begin(), extra.end());
  auto node = std::make_unique<Webnode>(id, "127.0.0.1:" + std::to_string(FreePort()), args);
  node->WaitHealthy();
  return node;
}

std::string HealthMaster(const Webnode& node) {
  HttpResponse r = HttpGet(node.admin_url("/health"));
  if (r.status != 200) return "health answered " + std::to_string(r.status);
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  return j.is_object() && j.contains("redis_master") ? j["redis_master"].get<std::string>() : "";
}

class SentinelTierTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (load) load->Stop();
  }

  void StartLoad(const Webnode& node) {
    LoadGenerator::Options o;
    o.port = node.port();
    for (int i = 0; i < 8; ++i) o.paths.push_back("/api/primes/" + std::to_string(2000 + i));
    o.rate_per_sec = 200;
    o.threads = 2;
    load = std::make_unique<LoadGenerator>(o);
    load->Start();
    ASSERT_TRUE(WaitFor([&] { return load->Snapshot().x_cache["HIT"] > 50; }, 10s)) << load->Snapshot().Describe();
  }

  // SIGKILLs the master (server 0) and waits until Sentinel has promoted the replica.
  void KillMasterAndWaitForPromotion() {
    ASSERT_TRUE(set.WaitReplicated());
    set.server(0).Kill();
    ASSERT_TRUE(WaitFor([&] { return set.MasterIndex(0) == 1; }, 20s)) << "Sentinel promoted nothing";
  }

  // Waits for `n` more hits than there are now.
  bool HitsResume(uint64_t n, std::chrono::milliseconds timeout) {
    const uint64_t hits = load->Snapshot().x_cache["HIT"];
    return WaitFor([&] { return load->Snapshot().x_cache["HIT"] > hits + n; }, timeout);
  }

  RedisSentinels set;
  std::unique_ptr<LoadGenerator> load;
};

TEST_F(SentinelTierTest, TheNodeFindsTheMasterThroughSentinelAndCachesThere) {
  set.Start();
  auto node = SentinelNode("s-find", set);
  if (HttpGet(node->url("/api/primes/10")).status == 404) GTEST_SKIP() << "webnode built without the demo app";
  ASSERT_TRUE(WaitFor([&] { return HealthMaster(*node) == AddressOf(set.server(0)).ToString(); }, 5s))
      << HealthMaster(*node);
  EXPECT_EQ(HttpGet(node->url("/api/primes/77")).header("x-cache"), "MISS");
  EXPECT_TRUE(WaitFor([&] { return HttpGet(node->url("/api/primes/77")).header("x-cache") == "HIT"; }, 5s));
  EXPECT_NE(set.server(0).Cli({"DBSIZE"}), "0");  // --redis 127.0.0.1:1 was ignored
  EXPECT_EQ(MetricValue(node->Metrics(), "webnode_redis_failovers_total"), 0.0);
}

// Password-protected Sentinels, told to the node with --redis-sentinel-password.
TEST(SentinelPasswordTest, TheNodeAsksProtectedSentinelsWithItsFlag) {
  RedisSentinels set({.password = "sentinel-secret"});
  set.Start();
  auto node = SentinelNode("s-auth", set, {"--redis-sentinel-password", "sentinel-secret"});
  if (HttpGet(node->url("/api/primes/10")).status == 404) GTEST_SKIP() << "webnode built without the demo app";
  ASSERT_TRUE(WaitFor([&] { return HealthMaster(*node) == AddressOf(set.server(0)).ToString(); }, 5s))
      << HealthMaster(*node);
  EXPECT_EQ(HttpGet(node->url("/api/primes/78")).header("x-cache"), "MISS");
  EXPECT_TRUE(WaitFor([&] { return HttpGet(node->url("/api/primes/78")).header("x-cache") == "HIT"; }, 5s));
}

TEST_F(SentinelTierTest, MasterSigkilledUnderLoadCostsNoRequestAndHitsResumeAfterPromotion) {
  set.Start();
  auto node = SentinelNode("s-kill", set);
  StartLoad(*node);
  KillMasterAndWaitForPromotion();
  const auto promoted = std::chrono::steady_clock::now();
  ASSERT_TRUE(HitsResume(20, 15s)) << load->Snapshot().Describe();
  std::cout << "hits resumed " << std::chrono::duration<double>(std::chrono::steady_clock::now() - promoted).count()
            << " s after the promotion was visible\n";
  load->Stop();
  LoadStats s = load->Snapshot();
  EXPECT_EQ(s.failed, 0u) << s.Describe();
  EXPECT_EQ(HealthMaster(*node), AddressOf(set.server(1)).ToString());
  EXPECT_EQ(MetricValue(node->Metrics(), "webnode_redis_failovers_total"), 1.0);
}

// The killed master restarted: it comes back as a master with no data until
// Sentinel demotes it. The node, writing all along, must never write to it.
TEST_F(SentinelTierTest, TheOldMasterRestartedReturnsAsAReplicaAndIsNeverWrittenTo) {
  set.Start();
  auto node = SentinelNode("s-return", set);
  StartLoad(*node);
  KillMasterAndWaitForPromotion();
  ASSERT_TRUE(HitsResume(20, 15s)) << load->Snapshot().Describe();
  // Misses from now on write new keys: fresh paths, so writes keep coming.
  load->Stop();
  LoadGenerator::Options o;
  o.port = node->port();
  for (int i = 0; i < 400; ++i) o.paths.push_back("/api/primes/" + std::to_string(5000 + i));
  o.rate_per_sec = 200;
  o.threads = 2;
  LoadGenerator writes(o);
  writes.Start();
  set.server(0).Start();  // empty (no persistence), and a master by its own account
  // Role and key count read in one script, atomically: once Sentinel has
  // made it a replica it loads the new master's keys, which are no writes.
  const std::string probe =
      "return {string.match(redis.call('INFO', 'replication'), 'role:(%a+)'), redis.call('DBSIZE')}";
  int looked_as_master = 0;
  std::string written_while_master;
  // On a loaded machine Sentinel may fail over a second time, once the old
  // master is a replica again: then it is the master by Sentinel's word, and
  // writes to it are right. Only keys written while Sentinel named another
  // master (before and after the look, so a switch in between is no fault)
  // break the rule.
  bool promoted_again = false;
  bool demoted = WaitFor(
      [&] {
        if (!set.server(0).running()) return false;
        const int named_before = set.MasterIndex(0);
        std::string out = set.server(0).Cli({"EVAL", probe, "0"});  // "master\n0"
        const std::string role = out.substr(0, out.find('\n'));
        if (role == "master") {
          ++looked_as_master;
          const int named_after = set.MasterIndex(0);
          if (named_before == 0 || named_after == 0) {
            promoted_again = true;  // only a replica is promoted: it was demoted first
            return true;
          }
          if (out != "master\n0") written_while_master = out;
        }
        return role == "slave";
      },
      20s);
  writes.Stop();
  LoadStats s = writes.Snapshot();
  EXPECT_TRUE(demoted) << "Sentinel never turned the old master into a replica";
  EXPECT_EQ(written_while_master, "") << "a key reached the restarted former master while Sentinel named another";
  const int master = promoted_again ? 0 : 1;
  if (promoted_again) std::cout << "Sentinel failed over a second time, to the restarted server\n";
  EXPECT_EQ(s.failed, 0u) << s.Describe();
  EXPECT_GT(s.x_cache["MISS"], 0u) << "the node wrote nothing meanwhile: the check proves nothing";
  EXPECT_TRUE(WaitFor([&] { return HealthMaster(*node) == AddressOf(set.server(master)).ToString(); }, 5s))
      << HealthMaster(*node);
  // A second failover is Sentinel's word the moment the loop above sees it;
  // the node hears of it a little later. Each one counted once, no more.
  const double failovers = promoted_again ? 2.0 : 1.0;
  EXPECT_TRUE(WaitFor([&] { return MetricValue(node->Metrics(), "webnode_redis_failovers_total") == failovers; }, 5s))
      << "the node went back and forth: " << MetricValue(node->Metrics(), "webnode_redis_failovers_total").value_or(-1)
      << " failovers, expected " << failovers;
  // As a replica it gets the new master's keys (and only through replication).
  ASSERT_TRUE(set.WaitReplicated(10s));
  EXPECT_EQ(set.server(0).Cli({"DBSIZE"}), set.server(1).Cli({"DBSIZE"}));
  std::cout << "the restarted old master answered ROLE master " << looked_as_master << " times\n";
}

TEST_F(SentinelTierTest, SentinelUnreachableAtStartTheNodeServesAndFollowsOnceItAnswers) {
  set.StartServers();  // no Sentinel yet
  auto node = SentinelNode("s-late", set);
  HttpResponse first = HttpGet(node->url("/api/primes/31"));
  if (first.status == 404) GTEST_SKIP() << "webnode built without the demo app";
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(first.header("x-cache"), "BYPASS");
  EXPECT_EQ(HealthMaster(*node), "unknown");
  set.StartSentinels();
  EXPECT_TRUE(WaitFor([&] { return HealthMaster(*node) == AddressOf(set.server(0)).ToString(); }, 10s))
      << HealthMaster(*node);
  // The breaker may still be open for its cool-down: hits follow within it.
  EXPECT_TRUE(WaitFor([&] { return HttpGet(node->url("/api/primes/31")).header("x-cache") == "HIT"; }, 10s));
}

// Redis servers and Sentinels both with requirepass, as the bundled
// deployments run them; the node gets both passwords as files. It finds the
// master, checks it with ROLE (which needs the servers' password), caches
// there, and prints neither password. Without the servers' password the
// master named by Sentinel is not confirmed: the node serves, bypassing the cache.
TEST(SentinelPasswordTest, TheNodeCachesWithPasswordFilesAndNeverLogsThem) {
  RedisSentinels set({.password = "sentinel-secret-42", .server_password = "redis-secret-42"});
  set.Start();
  EXPECT_NE(RedisCli(set.server(0).port(), {"SET", "k", "v"}).find("NOAUTH"), std::string::npos)
      << "the servers refuse a client without the password";
  TempDir dir;
  std::ofstream(dir.path() + "/redis-password") << "redis-secret-42\n";
  std::ofstream(dir.path() + "/sentinel-password") << "sentinel-secret-42\n";
  auto node = SentinelNode("s-files", set,
                           {"--redis-password-file", dir.path() + "/redis-password",
                            "--redis-sentinel-password-file", dir.path() + "/sentinel-password"});
  if (HttpGet(node->url("/api/primes/10")).status == 404) GTEST_SKIP() << "webnode built without the demo app";
  ASSERT_TRUE(WaitFor([&] { return HealthMaster(*node) == AddressOf(set.server(0)).ToString(); }, 5s))
      << HealthMaster(*node);
  EXPECT_EQ(HttpGet(node->url("/api/primes/79")).header("x-cache"), "MISS");
  EXPECT_TRUE(WaitFor([&] { return HttpGet(node->url("/api/primes/79")).header("x-cache") == "HIT"; }, 5s));
  EXPECT_NE(set.server(0).Cli({"DBSIZE"}), "0");
  EXPECT_EQ(MetricValue(node->Metrics(), "webnode_redis_master_rejected_total"), 0.0);

  auto no_server_password = SentinelNode("s-nopass", set, {"--redis-sentinel-password-file", dir.path() + "/sentinel-password"});
  ASSERT_TRUE(WaitFor([&] { return MetricValue(no_server_password->Metrics(), "webnode_redis_master_rejected_total") >= 2.0; }, 5s))
      << no_server_password->Metrics();
  EXPECT_EQ(HealthMaster(*no_server_password), "unknown");
  HttpResponse bypassed = HttpGet(no_server_password->url("/api/primes/80"));
  EXPECT_EQ(bypassed.status, 200);
  EXPECT_EQ(bypassed.header("x-cache"), "BYPASS");
  for (Webnode* n : {node.get(), no_server_password.get()}) {
    const std::string log = n->process().Log();
    EXPECT_EQ(log.find("redis-secret-42"), std::string::npos) << log;
    EXPECT_EQ(log.find("sentinel-secret-42"), std::string::npos) << log;
  }
  EXPECT_NE(no_server_password->process().Log().find("does not confirm"), std::string::npos)
      << no_server_password->process().Log();
}

// A webnode whose Sentinel names a replica: /health shows no master, the
// rejections count, and requests are answered without the cache.
TEST(SentinelRoleTest, TheNodeDoesNotUseAReplicaASentinelNames) {
  RedisServer primary, replica;
  StartPrimaryAndReplica(primary, replica);
  LoneSentinel liar(replica.port(), "webtier");
  auto node = std::make_unique<Webnode>(
      "s-liar", "127.0.0.1:" + std::to_string(FreePort()),
      std::vector<std::string>{"--redis", primary.address(), "--redis-sentinel", liar.address()});
  node->WaitHealthy();
  if (HttpGet(node->url("/api/primes/10")).status == 404) GTEST_SKIP() << "webnode built without the demo app";
  ASSERT_TRUE(WaitFor([&] { return MetricValue(node->Metrics(), "webnode_redis_master_rejected_total") >= 2.0; }, 5s))
      << node->Metrics();
  EXPECT_EQ(HealthMaster(*node), "unknown");
  EXPECT_EQ(HttpGet(node->url("/api/primes/81")).header("x-cache"), "BYPASS");
  EXPECT_EQ(replica.Cli({"DBSIZE"}), "0");
  EXPECT_EQ(primary.Cli({"DBSIZE"}), "0") << "--redis is ignored once Sentinels are given";
}

}  // namespace
}  // namespace webtier::cache
