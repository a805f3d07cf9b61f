// Integration tests of the balancer binary: a real ZooKeeper, real backend
// processes (balancer_test_backend, nginx, webnodes) registered as serverset
// members, and the balancer as a child process. Every wait is on observable
// state (WaitFor); no test asserts a performance threshold.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "echo_backend.h"
#include "webtier/common/serverset.h"
#include "webtier/common/zk_session.h"
#include "webtier/testing/h2_client.h"
#include "webtier/testing/harness.h"
#include "webtier/testing/load.h"
#include "webtier/testing/tls.h"

namespace webtier::balancer {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::BinaryPath;
using testing::FreePort;
using testing::HttpGet;
using testing::HttpRequest;
using testing::LoadGenerator;
using testing::LoadStats;
using testing::MetricValue;
using testing::Process;
using testing::RawExchange;
using testing::SendAll;
using testing::TempDir;
using testing::WaitFor;

constexpr const char* kPath = "/webtier/nodes";

// A backend process (balancer_test_backend) on a port it picks.
class Backend {
 public:
  explicit Backend(std::string id) : id_(std::move(id)) {
    proc_ = std::make_unique<Process>(
        Process::Options{.argv = {BinaryPath("balancer_test_backend"), "--port", "0", "--id", id_}});
    port_ = testing::WaitListeningPort(*proc_, "backend", 10s);
    if (!WaitFor([&] { return HttpGet(url("/"), 1s).status == 200; }, 10s))
      throw std::runtime_error("backend " + id_ + " did not start: " + proc_->Log());
  }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }
  serverset::Member member(uint32_t weight = 100) const {
    return {.id = id_, .host = "127.0.0.1", .port = port_, .zone = "test", .weight = weight};
  }
  Process& process() { return *proc_; }
  const std::string& id() const { return id_; }

 private:
  std::string id_;
  std::unique_ptr<Process> proc_;
  uint16_t port_ = 0;
};

// nginx as a member that is not a webnode: it answers X-Served-By itself.
class Nginx {
 public:
  explicit Nginx(std::string id) : id_(std::move(id)), port_(FreePort()), dir_("balancer-nginx") {
    testing::RequireInstalled("/usr/sbin/nginx");
    const std::string conf = dir_.path() + "/nginx.conf";
    std::ofstream(conf) << "master_process off; daemon off; worker_processes 1;\n"
                        << "error_log " << dir_.path() << "/error.log; pid " << dir_.path() << "/nginx.pid;\n"
                        << "events { worker_connections 1024; }\n"
                        << "http { access_log off;\n"
                        << "  client_body_temp_path " << dir_.path() << "/body; proxy_temp_path " << dir_.path() << "/proxy;\n"
                        << "  fastcgi_temp_path " << dir_.path() << "/fcgi; uwsgi_temp_path " << dir_.path() << "/uwsgi;\n"
                        << "  scgi_temp_path " << dir_.path() << "/scgi;\n"
                        << "  server { listen 127.0.0.1:" << port_ << ";\n"
                        << "    location / { add_header X-Served-By " << id_ << " always; return 200 \"nginx\\n\"; } } }\n";
    proc_ = std::make_unique<Process>(
        Process::Options{.argv = {"/usr/sbin/nginx", "-p", dir_.path(), "-c", conf}, .env = {}, .log_path = {}, .cwd = {}});
    if (!WaitFor([&] { return HttpGet("http://127.0.0.1:" + std::to_string(port_) + "/", 1s).status == 200; }, 10s))
      throw std::runtime_error("nginx did not start: " + proc_->Log());
  }
  serverset::Member member() const { return {.id = id_, .host = "127.0.0.1", .port = port_}; }

 private:
  std::string id_;
  uint16_t port_;
  TempDir dir_;
  std::unique_ptr<Process> proc_;
};

class BalancerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    zk_.Start();
    session_ = std::make_unique<zk::Session>(zk::Session::Options{.connect = zk_.connect(), .session_timeout_ms = 6000, .component = "test-zk"});
    ASSERT_TRUE(session_->Start().ok());
    ASSERT_TRUE(WaitFor([&] { return session_->connected(); }, 20s));
    ASSERT_TRUE(session_->EnsurePath(kPath).ok());
  }

  // Writes a member straight into ZooKeeper (ephemeral sequential, as webnodes do).
  std::string RegisterRaw(const std::string& data) {
    std::string created;
    webtier::Status s = session_->Create(std::string(kPath) + "/member_", data, zk::kEphemeral | zk::kSequence, &created);
    if (!s.ok()) throw std::runtime_error("register: " + s.ToString());
    return created;
  }
  std::string Register(const serverset::Member& m) { return RegisterRaw(serverset::Encode(m)); }

  void StartBalancer(std::vector<std::string> extra = {}) {
    balancer_ = std::make_unique<testing::Balancer>(zk_.connect(), kPath, std::move(extra));
  }

  std::string Url(const std::string& path) const { return balancer_->url(path); }
  std::string Admin(const std::string& path) const { return balancer_->admin_url(path); }

  json Status() {
    json j = json::parse(balancer_->StatusBody(), nullptr, false);
    return j.is_discarded() ? json::object() : j;
  }
  size_t Members() {
    auto members = balancer_->Members();
    return members ? members->size() : 0;
  }
  // n members in the pool, whatever their state.
  bool WaitListed(size_t n, std::chrono::milliseconds timeout = 10s) {
    return WaitFor([&] { return Members() == n; }, timeout);
  }
  // n members in the pool, every one taking traffic (its first check passed).
  bool WaitMembers(size_t n, std::chrono::milliseconds timeout = 10s) {
    return WaitFor([&] { return Members() == n && static_cast<size_t>(balancer_->HealthyCount()) == n; }, timeout);
  }
  // The /status entry of member `id` (null when absent).
  json MemberStatus(const std::string& id) {
    const json status = Status();
    for (const auto& m : status.value("members", json::array())) {
      if (m.value("id", "") == id) return m;
    }
    return nullptr;
  }
  double Metric(const std::string& name, const std::map<std::string, std::string>& labels = {}) {
    return MetricValue(balancer_->Metrics(), name, labels).value_or(-1);
  }
  // GETs of / through the balancer from `threads` threads, each sending its
  // next request once answered, on a fresh connection every time.
  std::unique_ptr<LoadGenerator> StartLoad(int threads) {
    auto load = std::make_unique<LoadGenerator>(LoadGenerator::Options{
        .port = balancer_->port(), .threads = threads, .rate_per_sec = 0, .timeout = 10s, .keep_alive = false});
    load->Start();
    return load;
  }
  // X-Served-By of `n` sequential requests.
  std::map<std::string, int> Shares(int n, const std::string& path = "/") {
    std::map<std::string, int> counts;
    for (int i = 0; i < n; ++i) {
      auto r = HttpGet(Url(path));
      EXPECT_EQ(r.status, 200) << r.error << r.body;
      counts[r.header("x-served-by")]++;
    }
    return counts;
  }

  testing::ZooKeeperServer zk_;
  std::unique_ptr<zk::Session> session_;
  std::unique_ptr<testing::Balancer> balancer_;
};

TEST_F(BalancerTest, RoundRobinGivesThreeMembersEqualShares) {
  Backend a("a"), b("b"), c("c");
  for (auto* x : {&a, &b, &c}) Register(x->member());
  StartBalancer();
  ASSERT_TRUE(WaitMembers(3));
  for (int run : {1, 2, 3, 30, 31, 299}) {
    auto counts = Shares(run);
    int lo = INT32_MAX, hi = 0, total = 0;
    for (const auto& id : {"a", "b", "c"}) {
      lo = std::min(lo, counts[id]);
      hi = std::max(hi, counts[id]);
      total += counts[id];
    }
    EXPECT_EQ(total, run);
    EXPECT_LE(hi - lo, 1) << "run of " << run;
  }
}

TEST_F(BalancerTest, NonWebnodeMemberWrittenIntoZooKeeperGetsItsShare) {
  Backend a("a"), b("b");
  Nginx nginx("nginx-1");
  Register(a.member());
  Register(b.member());
  // A hand-written serverset record with extra fields and no weight.
  auto m = nginx.member();
  RegisterRaw(R"({"serviceEndpoint":{"host":"127.0.0.1","port":)" + std::to_string(m.port) +
              R"(},"additionalEndpoints":{},"status":"ALIVE","id":"nginx-1","extra":{"x":1}})");
  StartBalancer();
  ASSERT_TRUE(WaitMembers(3));
  auto counts = Shares(90);
  EXPECT_EQ(counts["nginx-1"], 30);
  EXPECT_EQ(counts["a"], 30);
  EXPECT_EQ(counts["b"], 30);
}

TEST_F(BalancerTest, FollowsMembersAddedAndRemoved) {
  Backend a("a"), b("b"), c("c");
  const std::string pa = Register(a.member());
  Register(b.member());
  StartBalancer();
  ASSERT_TRUE(WaitMembers(2));
  EXPECT_EQ(Shares(10).count("c"), 0u);

  const auto t0 = std::chrono::steady_clock::now();
  Register(c.member());
  ASSERT_TRUE(WaitMembers(3));
  // Informational only (the poll adds up to 10 ms plus an HTTP round trip).
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  RecordProperty("member_added_visible_ms", static_cast<int>(ms));
  std::cout << "member visible in /status " << ms << " ms after the znode was created\n";
  auto counts = Shares(30);
  EXPECT_EQ(counts["c"], 10);

  ASSERT_TRUE(session_->Delete(pa).ok());
  ASSERT_TRUE(WaitMembers(2));
  counts = Shares(30);
  EXPECT_EQ(counts.count("a"), 0u);
  EXPECT_EQ(counts["b"], 15);
  EXPECT_EQ(counts["c"], 15);
  EXPECT_GE(Metric("balancer_pool_updates_total"), 3);
}

TEST_F(BalancerTest, SigkillOfAMemberUnderLoadLosesNoRequest) {
  Backend a("a"), b("b"), c("c");
  for (auto* x : {&a, &b, &c}) Register(x->member());
  StartBalancer();
  ASSERT_TRUE(WaitMembers(3));
  auto load = StartLoad(4);
  ASSERT_TRUE(WaitFor([&] { return load->Snapshot().ok >= 300; }, 30s));
  b.process().Kill();  // its znode stays (our session owns it): only ejection and retries protect clients
  const uint64_t at_kill = load->Snapshot().ok;
  ASSERT_TRUE(WaitFor([&] { return load->Snapshot().ok >= at_kill + 600; }, 60s));
  load->Stop();
  EXPECT_EQ(load->Snapshot().failed, 0u) << load->Snapshot().Describe();
  EXPECT_GE(Metric("balancer_ejections_total"), 1);
  // The killed member was ejected (it may be back on probation by now: the
  // first ejection lasts a second, and under a sanitizer the 600 requests
  // can take longer than that).
  json s = Status();
  bool saw_ejected = false;
  for (const auto& m : s["members"]) {
    if (m["id"] != "b") continue;
    saw_ejected = m["state"] == "ejected" || m.value("ejections", 0) >= 1;
    EXPECT_FALSE(m.value("ejection_reasons", json::array()).empty()) << m.dump();
  }
  EXPECT_TRUE(saw_ejected) << s.dump();
}

TEST_F(BalancerTest, ZooKeeperStoppedKeepsServingTheFullPool) {
  Backend a("a"), b("b"), c("c");
  for (auto* x : {&a, &b, &c}) Register(x->member());
  StartBalancer();
  ASSERT_TRUE(WaitMembers(3));
  ASSERT_TRUE(WaitFor([&] { return Metric("balancer_zk_connected") == 1; }, 10s));
  zk_.Stop();
  ASSERT_TRUE(WaitFor([&] { return Metric("balancer_zk_connected") == 0; }, 20s));
  EXPECT_NE(Status()["zookeeper"]["state"], "connected");
  EXPECT_EQ(Members(), 3u);
  auto counts = Shares(30);
  EXPECT_EQ(counts["a"], 10);
  EXPECT_EQ(counts["b"], 10);
  EXPECT_EQ(counts["c"], 10);
}

TEST_F(BalancerTest, ZooKeeperRestartIsFollowed) {
  Backend a("a"), d("d");
  Register(a.member());
  StartBalancer();
  ASSERT_TRUE(WaitMembers(1));
  zk_.Stop();
  ASSERT_TRUE(WaitFor([&] { return Metric("balancer_zk_connected") == 0; }, 20s));
  zk_.Start();
  ASSERT_TRUE(WaitFor([&] { return Metric("balancer_zk_connected") == 1; }, 30s));
  // Whether the sessions survived the restart or expired, the balancer has
  // re-listed and re-armed its watches: a member added now is followed.
  ASSERT_TRUE(WaitFor([&] { return session_->connected(); }, 30s));
  ASSERT_TRUE(session_->EnsurePath(kPath).ok());
  Register(d.member());
  ASSERT_TRUE(WaitFor([&] {
    const json status = Status();  // keep it alive: the loop must not iterate a destroyed temporary
    for (const auto& m : status["members"]) if (m["id"] == "d") return true;
    return false;
  }, 20s)) << Status().dump();
  bool served_by_d = false;
  for (int i = 0; i < 4 && !served_by_d; ++i) served_by_d = HttpGet(Url("/")).header("x-served-by") == "d";
  EXPECT_TRUE(served_by_d);
}

TEST_F(BalancerTest, BootWithZooKeeperDownServesFromTheStateFile) {
  TempDir dir("balancer-state");
  const std::string state = dir.path() + "/pool.json";
  Backend a("a"), b("b");
  Register(a.member());
  Register(b.member());
  StartBalancer({"--state-file", state});
  ASSERT_TRUE(WaitMembers(2));
  ASSERT_TRUE(WaitFor([&] {
    std::ifstream in(state);
    json j = json::parse(in, nullptr, false);
    return !j.is_discarded() && j["members"].size() == 2;
  }, 10s));
  EXPECT_EQ(balancer_->Stop(SIGTERM, 20s), 0) << balancer_->process().Log();

  zk_.Stop();
  StartBalancer({"--state-file", state});
  EXPECT_EQ(Status()["source"], "state_file");
  EXPECT_EQ(Members(), 2u);
  auto counts = Shares(20);
  EXPECT_EQ(counts["a"], 10);
  EXPECT_EQ(counts["b"], 10);
}

TEST_F(BalancerTest, InvalidMemberDataIsIgnoredCountedAndHarmless) {
  Backend a("a");
  Register(a.member());
  RegisterRaw("this is not json");
  RegisterRaw(R"({"serviceEndpoint":{"port":8080},"status":"ALIVE"})");
  RegisterRaw(R"({"serviceEndpoint":{"host":"127.0.0.1","port":70000},"status":"ALIVE"})");
  RegisterRaw(R"({"serviceEndpoint":{"host":"127.0.0.1","port":8080},"status":"DEAD"})");
  RegisterRaw("");
  StartBalancer();
  ASSERT_TRUE(WaitMembers(1));
  ASSERT_TRUE(WaitFor([&] { return Metric("balancer_invalid_members_total") == 5; }, 10s));
  EXPECT_EQ(Shares(5)["a"], 5);
  // A member that turns invalid later is dropped and counted too.
  // (Nothing listens there: it is listed, never healthy.)
  const std::string later = Register({.id = "later", .host = "127.0.0.1", .port = FreePort()});
  ASSERT_TRUE(WaitListed(2));
  ASSERT_TRUE(session_->Set(later, "{broken").ok());
  ASSERT_TRUE(WaitListed(1));
  EXPECT_TRUE(WaitFor([&] { return Metric("balancer_invalid_members_total") == 6; }, 10s));
  EXPECT_TRUE(balancer_->process().running());
}

TEST_F(BalancerTest, SmugglingOversizedAndSlowRequestsAreAnsweredWhileTrafficFlows) {
  Backend a("a"), b("b");
  Register(a.member());
  Register(b.member());
  StartBalancer({"--max-header-bytes", "2048", "--max-body-bytes", "10000", "--header-timeout-ms", "500"});
  ASSERT_TRUE(WaitMembers(2));
  auto load = StartLoad(2);
  auto status_of = [&](const std::string& raw, size_t pause_after = std::string::npos) {
    return RawExchange(balancer_->port(), raw, 5s, pause_after, 1500ms).substr(0, 12);
  };
  EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            "HTTP/1.1 400");
  EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n"),
            "HTTP/1.1 400");
  EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx"), "HTTP/1.1 400");
  EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy"), "HTTP/1.1 400");
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: x\r\nCookie: " + std::string(5000, 'c') + "\r\n\r\n"), "HTTP/1.1 431");
  EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 20000\r\n\r\n" + std::string(20000, 'b')),
            "HTTP/1.1 413");
  // Slowloris: the header arrives in two parts, the second after the header timeout.
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n\r\n", 20), "HTTP/1.1 408");
  // A body under the limit still goes through, chunked.
  auto ok = RawExchange(balancer_->port(), "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n4\r\nabcd\r\n0\r\n\r\n", 5s);
  EXPECT_EQ(ok.substr(0, 12), "HTTP/1.1 200");
  EXPECT_NE(ok.find("\"body_size\":4"), std::string::npos) << ok;
  ASSERT_TRUE(WaitFor([&] { return load->Snapshot().ok >= 50; }, 20s));
  load->Stop();
  EXPECT_EQ(load->Snapshot().failed, 0u) << load->Snapshot().Describe();
  EXPECT_EQ(Metric("balancer_rejected_requests_total", {{"reason", "smuggling"}}), 4);
  EXPECT_EQ(Metric("balancer_rejected_requests_total", {{"reason", "header_too_large"}}), 1);
  EXPECT_EQ(Metric("balancer_rejected_requests_total", {{"reason", "body_too_large"}}), 1);
  EXPECT_EQ(Metric("balancer_rejected_requests_total", {{"reason", "header_timeout"}}), 1);
  EXPECT_TRUE(balancer_->process().running());
}

// Bodies past 64 KiB are streamed to the member; the limit still holds for
// the whole body, also when it is only passed partway through a chunked one.
TEST_F(BalancerTest, LargeBodiesAreStreamedWithinTheLimitWhileTrafficFlows) {
  Backend a("a"), b("b");
  Register(a.member());
  Register(b.member());
  StartBalancer({"--max-body-bytes", "1000000"});
  ASSERT_TRUE(WaitMembers(2));
  auto load = StartLoad(2);
  auto chunked = [](int pieces) {
    std::string raw = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    for (int i = 0; i < pieces; ++i) raw += "186a0\r\n" + std::string(100000, 'c') + "\r\n";  // 100000 bytes
    return raw + "0\r\n\r\n";
  };
  auto r = HttpRequest("POST", Url("/"), {}, std::string(600000, 'q'));
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(json::parse(r.body)["body_size"], 600000);
  auto ok = RawExchange(balancer_->port(), chunked(7), 10s);
  EXPECT_EQ(ok.substr(0, 12), "HTTP/1.1 200");
  EXPECT_NE(ok.find("\"body_size\":700000"), std::string::npos) << ok.substr(0, 300);
  EXPECT_EQ(RawExchange(balancer_->port(), chunked(12), 10s).substr(0, 12), "HTTP/1.1 413");
  ASSERT_TRUE(WaitFor([&] { return load->Snapshot().ok >= 50; }, 20s));
  load->Stop();
  EXPECT_EQ(load->Snapshot().failed, 0u) << load->Snapshot().Describe();
  EXPECT_EQ(Metric("balancer_rejected_requests_total", {{"reason", "body_too_large"}}), 1);
  EXPECT_TRUE(balancer_->process().running());
}

TEST_F(BalancerTest, WeightedRoundRobinFollowsWeights) {
  Backend a("a"), b("b"), c("c");
  Register(a.member(300));
  Register(b.member(100));
  Register(c.member(100));
  StartBalancer({"--policy", "weighted_round_robin"});
  ASSERT_TRUE(WaitMembers(3));
  auto counts = Shares(250);
  EXPECT_EQ(counts["a"], 150);
  EXPECT_EQ(counts["b"], 50);
  EXPECT_EQ(counts["c"], 50);
}

TEST_F(BalancerTest, LeastRequestSpreadsAndAvoidsTheBusyMember) {
  Backend a("a"), b("b"), c("c");
  for (auto* x : {&a, &b, &c}) Register(x->member());
  StartBalancer({"--policy", "least_request"});
  ASSERT_TRUE(WaitMembers(3));
  auto counts = Shares(300);
  for (const auto& id : {"a", "b", "c"}) EXPECT_GT(counts[id], 50) << id;  // random ties: all get a fair part

  // Stall a (SIGSTOP): requests sent to it hang. Round robin would soon have
  // every client thread stuck there; least_request keeps the rest flowing.
  auto requests_of = [&](const json& status) {
    std::map<std::string, uint64_t> out;
    for (const auto& m : status["members"]) out[m["id"].get<std::string>()] = m["requests"].get<uint64_t>();
    return out;
  };
  auto before = requests_of(Status());
  json status;
  a.process().Signal(SIGSTOP);
  {
    auto load = StartLoad(4);
    ASSERT_TRUE(WaitFor([&] { return load->Snapshot().ok >= 300; }, 20s)) << load->Snapshot().Describe();
    // Read the shares while a is still stopped: once it runs again it rightly
    // takes new requests until the load stops, which says nothing about the stall.
    status = Status();
    a.process().Signal(SIGCONT);
    load->Stop();
    EXPECT_EQ(load->Snapshot().failed, 0u) << load->Snapshot().Describe();
  }
  SCOPED_TRACE(status.dump());
  auto after = requests_of(status);
  EXPECT_LE(after["a"] - before["a"], 8u);  // only the few that were stuck there (at most one per client thread, plus ties)
  EXPECT_GT(after["b"] - before["b"], 100u);
  EXPECT_GT(after["c"] - before["c"], 100u);
}

TEST_F(BalancerTest, ConsistentHashKeepsAPathOnOneMember) {
  Backend a("a"), b("b"), c("c");
  for (auto* x : {&a, &b, &c}) Register(x->member());
  StartBalancer({"--policy", "consistent_hash"});
  ASSERT_TRUE(WaitMembers(3));
  std::map<std::string, int> spread;
  for (int i = 0; i < 150; ++i) {
    const std::string path = "/item/" + std::to_string(i);
    auto first = HttpGet(Url(path)).header("x-served-by");
    EXPECT_EQ(HttpGet(Url(path + "?q=1")).header("x-served-by"), first) << path;  // query ignored
    spread[first]++;
  }
  for (const auto& id : {"a", "b", "c"}) EXPECT_GT(spread[id], 20) << id;
}

TEST_F(BalancerTest, StatusMetricsAndHealthFollowTheSpec) {
  Backend a("a");
  Register(a.member());
  StartBalancer();
  ASSERT_TRUE(WaitMembers(1));
  ASSERT_EQ(HttpGet(Url("/")).status, 200);
  // The attempt is accounted for just after the client has its response.
  ASSERT_TRUE(WaitFor([&] { return Status()["members"][0]["in_flight"] == 0; }, 5s));
  json s = Status();
  EXPECT_EQ(s["policy"], "round_robin");
  EXPECT_EQ(s["zookeeper"]["state"], "connected");
  ASSERT_EQ(s["members"].size(), 1u);
  const auto& m = s["members"][0];
  EXPECT_EQ(m["id"], "a");
  EXPECT_EQ(m["address"], "127.0.0.1:" + std::to_string(a.member().port));
  EXPECT_EQ(m["state"], "healthy");
  EXPECT_EQ(m["in_flight"], 0);
  EXPECT_EQ(m["requests"], 1);

  ASSERT_TRUE(WaitFor([&] { return Metric("balancer_requests_total", {{"code", "200"}}) == 1; }, 5s));
  const std::string text = HttpGet(Admin("/metrics")).body;
  for (const char* name :
       {"balancer_request_duration_seconds_bucket", "balancer_upstream_requests_total", "balancer_pool_members",
        "balancer_pool_updates_total", "balancer_retries_total", "balancer_ejections_total",
        "balancer_invalid_members_total", "balancer_zk_connected", "balancer_build_info",
        "process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds",
        "process_start_time_seconds"}) {
    EXPECT_NE(text.find(name), std::string::npos) << name;
  }
  EXPECT_EQ(MetricValue(text, "balancer_pool_members", {{"state", "healthy"}}), 1);
  EXPECT_EQ(MetricValue(text, "balancer_upstream_requests_total", {{"member", "a"}, {"outcome", "ok"}}), 1);
  EXPECT_EQ(HttpGet(Admin("/health")).status, 200);
  auto page = HttpGet(Admin("/status.html"));
  EXPECT_EQ(page.status, 200);
  EXPECT_NE(page.header("content-type").find("text/html"), std::string::npos);
  EXPECT_EQ(HttpGet(Admin("/nope")).status, 404);
}

TEST_F(BalancerTest, EmptyPoolAnswers503AndPathMayAppearLater) {
  StartBalancer({"--zk-path", "/not/yet/there"});
  auto r = HttpGet(Url("/"));
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(json::parse(r.body)["error"], "no members");
  Backend a("a");
  ASSERT_TRUE(session_->EnsurePath("/not/yet/there").ok());
  std::string created;
  ASSERT_TRUE(session_->Create("/not/yet/there/member_", serverset::Encode(a.member()), zk::kEphemeral | zk::kSequence, &created).ok());
  ASSERT_TRUE(WaitMembers(1));
  EXPECT_EQ(HttpGet(Url("/")).status, 200);
}

TEST_F(BalancerTest, SigtermFinishesRequestsInFlightAndExitsZero) {
  Backend a("a");
  Register(a.member());
  StartBalancer();
  ASSERT_TRUE(WaitMembers(1));
  std::atomic<int> status{0};
  std::thread slow([&] { status = HttpGet(Url("/sleep/1500"), 10s).status; });
  ASSERT_TRUE(WaitFor([&] { return Status()["members"][0]["in_flight"] == 1; }, 5s));
  balancer_->process().Signal(SIGTERM);
  EXPECT_TRUE(WaitFor([&] { return Status().value("draining", false); }, 1s)) << "/status says it drains";
  slow.join();
  EXPECT_EQ(status.load(), 200);
  EXPECT_EQ(balancer_->process().Wait(10s), 0) << balancer_->process().Log();
}

TEST_F(BalancerTest, RealWebnodesShareEquallyAndSurviveASigkill) {
  try {
    BinaryPath("webnode");
  } catch (const std::exception& e) {
    GTEST_SKIP() << e.what();
  }
  std::vector<std::unique_ptr<testing::Webnode>> nodes;
  for (int i = 1; i <= 3; ++i) {
    nodes.push_back(std::make_unique<testing::Webnode>("node-" + std::to_string(i), zk_.connect()));
    nodes.back()->WaitHealthy();
    ASSERT_TRUE(nodes.back()->WaitReady());
  }
  StartBalancer();
  ASSERT_TRUE(WaitMembers(3));
  auto counts = Shares(300);
  for (int i = 1; i <= 3; ++i) EXPECT_EQ(counts["node-" + std::to_string(i)], 100) << "node-" << i;

  auto load = StartLoad(4);
  ASSERT_TRUE(WaitFor([&] { return load->Snapshot().ok >= 200; }, 30s));
  nodes[1]->process().Kill();
  const uint64_t at_kill = load->Snapshot().ok;
  // Its ephemeral znode goes when its session times out; traffic flows meanwhile.
  ASSERT_TRUE(WaitMembers(2, 30s));
  ASSERT_TRUE(WaitFor([&] { return load->Snapshot().ok >= at_kill + 300; }, 60s));
  load->Stop();
  EXPECT_EQ(load->Snapshot().failed, 0u) << load->Snapshot().Describe();
}

TEST_F(BalancerTest, AdminRoutesAreRefusedPubliclyAndForwardedFromTheAdminPort) {
  Backend a("a");
  Register(a.member());
  StartBalancer();
  ASSERT_TRUE(WaitMembers(1));
  // The public listener: 404 for every spelling, nothing reaches the member.
  const uint64_t before = Status()["members"][0]["requests"].get<uint64_t>();
  for (const char* target : {"/admin/purge?path=/", "/%61dmin/purge", "//admin/purge", "/x/../admin/purge"}) {
    const std::string raw = std::string("POST ") + target +
                            " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nContent-Length: 0\r\n\r\n";
    const std::string answer = RawExchange(balancer_->port(), raw, 5s);
    EXPECT_EQ(answer.substr(0, 12), "HTTP/1.1 404") << target << ": " << answer;
    EXPECT_NE(answer.find("admin port"), std::string::npos) << answer;
  }
  EXPECT_EQ(Status()["members"][0]["requests"].get<uint64_t>(), before);
  EXPECT_EQ(Metric("balancer_rejected_requests_total", {{"reason", "admin_path"}}), 4);
  EXPECT_EQ(HttpGet(Url("/administrator")).status, 200);  // only the admin routes

  // The admin port: forwarded to a member with the token, its answer returned.
  auto r = HttpRequest("POST", Admin("/admin/purge?path=/x"), {"Authorization: Bearer t", "Cookie: no"}, "");
  ASSERT_EQ(r.status, 200) << r.error << r.body;
  EXPECT_EQ(r.header("x-served-by"), "a");
  json seen = json::parse(r.body);
  EXPECT_EQ(seen["method"], "POST");
  EXPECT_EQ(seen["target"], "/admin/purge?path=/x");
  EXPECT_EQ(seen["headers"]["authorization"], "Bearer t");
  EXPECT_FALSE(seen["headers"].contains("cookie"));  // only the token goes along

  // No member reachable: a clear 502, the admin port keeps serving.
  a.process().Kill();
  auto down = HttpRequest("POST", Admin("/admin/purge?path=/x"), {"Authorization: Bearer t"}, "");
  EXPECT_EQ(down.status, 502) << down.body;
  EXPECT_EQ(HttpGet(Admin("/health")).status, 200);
}

// The admin port forwards a purge and nothing else, to the member's admin
// endpoint when its record publishes one.
TEST_F(BalancerTest, AdminPortForwardsOnlyPurgesToTheMembersAdminEndpoint) {
  Backend service("svc");
  Backend admin("adm");  // plays the member's admin listener
  serverset::Member m = service.member();
  m.admin_port = admin.member().port;
  Register(m);
  StartBalancer();
  ASSERT_TRUE(WaitMembers(1));
  for (const char* target : {"/admin/purge?path=/x", "/admin/purge?tag=news"}) {
    auto r = HttpRequest("POST", Admin(target), {"Authorization: Bearer t"}, "");
    ASSERT_EQ(r.status, 200) << target << ": " << r.error << r.body;
    json seen = json::parse(r.body);
    EXPECT_EQ(seen["server"], "adm") << "sent to the admin endpoint, not the service one";
    EXPECT_EQ(seen["target"], target);
  }
  // Anything else is answered here: 405 for another method on the purge, 404 otherwise.
  for (const char* method : {"GET", "PUT", "DELETE"}) {
    auto r = HttpRequest(method, Admin("/admin/purge?path=/x"), {"Authorization: Bearer t"}, "");
    EXPECT_EQ(r.status, 405) << method << ": " << r.body;
    EXPECT_EQ(r.header("allow"), "POST");
    EXPECT_EQ(r.header("x-served-by"), "") << "not forwarded";
  }
  for (const char* target : {"/admin/purge", "/admin/purge?x=1", "/admin/purge?path=", "/admin/other",
                             "/admin/purge/../metrics", "/admin/purge/?path=/x"}) {
    auto r = HttpRequest("POST", Admin(target), {"Authorization: Bearer t"}, "");
    EXPECT_EQ(r.status, 404) << target << ": " << r.body;
    EXPECT_EQ(r.header("x-served-by"), "") << target << " was forwarded";
  }
}

// Occurrences of `needle` in `text`.
size_t CountOf(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// Whoever can write to ZooKeeper writes member records; the balancer itself
// decides where it may connect: the resolved address is checked.
TEST_F(BalancerTest, MembersOutsideMemberAllowOrAtTheMetadataAddressAreRefusedOnce) {
  Backend a("a"), b("b");
  Register(a.member());
  Register({.id = "metadata", .host = "169.254.169.254", .port = 80});
  Register({.id = "metadata-decimal", .host = "2852039166", .port = 80});  // resolves to 169.254.169.254
  Register({.id = "metadata-mapped", .host = "::ffff:169.254.169.254", .port = 80});
  Register({.id = "outside", .host = "192.0.2.10", .port = 8080});
  StartBalancer({"--member-allow", "127.0.0.0/8, 198.51.100.0/24"});
  ASSERT_TRUE(WaitMembers(1)) << balancer_->StatusBody();
  EXPECT_TRUE(MemberStatus("metadata").is_null());
  EXPECT_TRUE(MemberStatus("outside").is_null());
  EXPECT_EQ(Shares(6)["a"], 6);
  ASSERT_TRUE(WaitFor([&] { return Metric("balancer_refused_members_total") == 4; }, 10s));
  std::string log = balancer_->process().Log();
  EXPECT_EQ(CountOf(log, "member refused"), 4u) << log;
  EXPECT_NE(log.find("member=metadata-decimal znode="), std::string::npos) << log;
  EXPECT_NE(log.find("reason=\"cloud metadata address\""), std::string::npos) << log;
  EXPECT_NE(log.find("reason=\"outside --member-allow\""), std::string::npos) << log;

  // Later changes re-read the membership; the refused members are not logged again.
  Register(b.member());
  ASSERT_TRUE(WaitMembers(2));
  EXPECT_EQ(Metric("balancer_refused_members_total"), 4);
  EXPECT_EQ(CountOf(balancer_->process().Log(), "member refused"), 4u);
  EXPECT_TRUE(balancer_->process().running());
}

TEST_F(BalancerTest, WithoutMemberAllowMetadataLinkLocalAndUnspecifiedAreStillRefused) {
  Backend a("a");
  Register(a.member());
  Register({.id = "metadata", .host = "169.254.169.254", .port = 80});
  Register({.id = "link-local", .host = "fe80::1", .port = 80});
  Register({.id = "unspecified", .host = "0", .port = a.member().port});  // "0" resolves to 0.0.0.0, i.e. local
  StartBalancer();
  ASSERT_TRUE(WaitMembers(1)) << balancer_->StatusBody();
  ASSERT_TRUE(WaitFor([&] { return Metric("balancer_refused_members_total") == 3; }, 10s));
  EXPECT_EQ(Shares(4)["a"], 4);
}

// A new process with --takeover: it takes the listening sockets of the
// running one (same ports, a changed flag), the old one finishes what it has
// in flight, says it handed over, and exits 0 well before --drain-ms.
TEST_F(BalancerTest, ATakeoverMovesTheSocketsAndTheOldProcessFinishesItsRequests) {
  Backend a("a");
  Register(a.member());
  TempDir dir("takeover");
  const std::string control = dir.path() + "/control.sock";
  StartBalancer({"--control-socket", control, "--drain-ms", "10000"});
  ASSERT_TRUE(WaitMembers(1));
  const uint16_t port = balancer_->port();
  std::atomic<int> slow_status{0};
  std::thread slow([&] { slow_status = HttpGet(Url("/sleep/1500"), 10s).status; });
  ASSERT_TRUE(WaitFor([&] { return Status()["members"][0]["in_flight"] == 1; }, 5s));
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<Process> old =
      balancer_->TakeOver({"--control-socket", control, "--drain-ms", "10000", "--policy", "least_request"});
  EXPECT_EQ(balancer_->port(), port);
  EXPECT_TRUE(WaitFor([&] { return Status().value("policy", "") == "least_request"; }, 2s)) << "the new flags serve";
  EXPECT_TRUE(WaitFor([&] { return Status().value("predecessor_connections", 0) >= 1; }, 2s))
      << "the old process reports the connection it still holds";
  EXPECT_EQ(Status().value("draining", true), false);
  EXPECT_EQ(HttpGet(Url("/")).status, 200);
  slow.join();
  EXPECT_EQ(slow_status.load(), 200) << "the request in flight in the old process was finished";
  EXPECT_EQ(old->Wait(10s), 0) << old->Log();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s) << "an old process with nothing left exits before --drain-ms";
  EXPECT_NE(old->Log().find("msg=\"handed over\""), std::string::npos) << old->Log();
  EXPECT_EQ(Metric("balancer_takeovers_total"), 1);
  EXPECT_TRUE(WaitFor([&] { return Metric("balancer_predecessor_connections") == 0; }, 5s));
  // And again, from the process that took over.
  std::unique_ptr<Process> second = balancer_->TakeOver({"--control-socket", control});
  EXPECT_EQ(second->Wait(10s), 0) << second->Log();
  EXPECT_EQ(HttpGet(Url("/")).status, 200);
}

// Without a running balancer, --takeover binds as usual; a second balancer
// on a live control socket without --takeover is refused (exit 1).
TEST_F(BalancerTest, TakeoverWithNobodyThereBindsAndALiveControlSocketIsNotShared) {
  Backend a("a");
  Register(a.member());
  TempDir dir("takeover");
  const std::string control = dir.path() + "/control.sock";
  StartBalancer({"--control-socket", control, "--takeover"});
  EXPECT_NE(balancer_->process().Log().find("no balancer to take over"), std::string::npos);
  ASSERT_TRUE(WaitMembers(1));
  Process second(Process::Options{.argv = {BinaryPath("balancer"), "--listen", "127.0.0.1:0", "--admin-listen",
                                           "127.0.0.1:0", "--zk", zk_.connect(), "--zk-path", kPath,
                                           "--control-socket", control},
                                  .env = {}, .log_path = {}, .cwd = {}});
  EXPECT_EQ(second.Wait(20s), 1) << second.Log();
  EXPECT_NE(second.Log().find("already listens"), std::string::npos) << second.Log();
  EXPECT_EQ(HttpGet(Url("/")).status, 200);
}

// A would-be successor that takes the sockets and vanishes without
// confirming changes nothing: the balancer goes on serving on them, and a
// real successor takes over afterwards.
TEST_F(BalancerTest, ASuccessorThatVanishesMidHandoverLeavesTheBalancerServing) {
  Backend a("a");
  Register(a.member());
  TempDir dir("takeover");
  const std::string control = dir.path() + "/control.sock";
  StartBalancer({"--control-socket", control});
  ASSERT_TRUE(WaitMembers(1));
  auto load = StartLoad(2);
  for (int i = 0; i < 3; ++i) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, control.data(), control.size());
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << std::strerror(errno);
    ASSERT_TRUE(SendAll(fd, "takeover 1\n"));
    char buf[512];
    EXPECT_GT(::recv(fd, buf, sizeof buf, 0), 0) << "the handover was offered";
    ::close(fd);  // and its sockets with it, unconfirmed
  }
  std::this_thread::sleep_for(300ms);
  EXPECT_NE(balancer_->process().Log().find("takeover abandoned; still serving"), std::string::npos);
  std::unique_ptr<Process> old = balancer_->TakeOver({"--control-socket", control});
  std::this_thread::sleep_for(300ms);
  load->Stop();
  const LoadStats s = load->Snapshot();
  EXPECT_EQ(s.failed, 0u) << s.Describe();
  EXPECT_GT(s.ok, 20u) << s.Describe();
  EXPECT_EQ(old->Wait(10s), 0) << old->Log();
}

// A predecessor that lies: the new process exits 1 with the reason.
TEST(BalancerTakeover, APredecessorThatSendsNoSocketsMakesTheSuccessorExitWithTheReason) {
  TempDir dir("takeover");
  const std::string control = dir.path() + "/control.sock";
  const int listener = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, control.data(), control.size());
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 1), 0);
  std::thread liar([&] {
    const int conn = ::accept(listener, nullptr, nullptr);
    char buf[64];
    (void)::recv(conn, buf, sizeof buf, 0);
    SendAll(conn, "webtier-handover 1\npid " + std::to_string(::getpid()) + "\nlistener proxy 127.0.0.1:1\nend\n");
    std::this_thread::sleep_for(500ms);
    ::close(conn);
  });
  testing::ZooKeeperServer zk;
  zk.Start();
  Process p(Process::Options{.argv = {BinaryPath("balancer"), "--listen", "127.0.0.1:0", "--admin-listen",
                                      "127.0.0.1:0", "--zk", zk.connect(),
                                      "--control-socket", control, "--takeover"},
                             .env = {}, .log_path = {}, .cwd = {}});
  EXPECT_EQ(p.Wait(20s), 1) << p.Log();
  EXPECT_NE(p.Log().find("takeover failed; the running balancer keeps serving"), std::string::npos) << p.Log();
  EXPECT_NE(p.Log().find("named 1 sockets but sent 0"), std::string::npos) << p.Log();
  liar.join();
  ::close(listener);
}

TEST(BalancerFlags, BadFlagsExitWithTwo) {
  for (std::vector<std::string> bad : {std::vector<std::string>{"--policy", "random"}, {"--retries", "x"},
                                       {"--listen", "nohostport"}, {"--no-such-flag"}, {"--zk-path", "relative"},
                                       {"--member-allow", "10.0.0.1/8"}, {"--zk-auth-file", "/nonexistent"}}) {
    std::vector<std::string> argv = {BinaryPath("balancer")};
    argv.insert(argv.end(), bad.begin(), bad.end());
    Process p(Process::Options{.argv = argv, .env = {}, .log_path = {}, .cwd = {}});
    EXPECT_EQ(p.Wait(10s), 2) << bad[0] << ": " << p.Log();
    EXPECT_NE(p.Log().find("error"), std::string::npos) << p.Log();
  }
  Process env(Process::Options{.argv = {BinaryPath("balancer")}, .env = {{"BALANCER_POLICY", "bogus"}}, .log_path = {}, .cwd = {}});
  EXPECT_EQ(env.Wait(10s), 2) << env.Log();
}

}  // namespace
}  // namespace webtier::balancer

namespace webtier::balancer {
namespace {

// A member that answers every request with one status (its /health too),
// over keep-alive connections: /status/<n> of the test backend is per
// request, this is per member. hits() counts requests other than checks.
class FixedStatusMember {
 public:
  explicit FixedStatusMember(int status) : status_(status) {
    fd_ = testing::ListenLoopback(&port_);
    thread_ = std::thread([this] {
      for (;;) {
        const int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        std::thread([this, c] {
          std::string in;
          char buf[2048];
          for (;;) {
            const ssize_t n = ::recv(c, buf, sizeof buf, 0);
            if (n <= 0) break;
            in.append(buf, static_cast<size_t>(n));
            for (size_t end; (end = in.find("\r\n\r\n")) != std::string::npos;) {
              if (in.compare(0, 12, "GET /health ") != 0) hits_++;
              in.erase(0, end + 4);
              const std::string body = "fixed\n";
              testing::SendAll(c, "HTTP/1.1 " + std::to_string(status_) + " X\r\nX-Served-By: fixed\r\nContent-Length: " +
                                      std::to_string(body.size()) + "\r\n\r\n" + body);
            }
          }
          ::close(c);
        }).detach();
      }
    });
  }
  ~FixedStatusMember() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  serverset::Member member() const { return {.id = "fixed", .host = "127.0.0.1", .port = port_, .zone = "test"}; }
  int hits() const { return hits_.load(); }

 private:
  int status_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<int> hits_{0};
  std::thread thread_;
};

// The element that starts with `open` (e.g. `<tr id="member-b"`), up to its `close`.
std::string Element(const std::string& dom, const std::string& open, const std::string& close) {
  const size_t at = dom.find(open);
  if (at == std::string::npos) return "";
  const size_t end = dom.find(close, at);
  return dom.substr(at, end == std::string::npos ? std::string::npos : end + close.size() - at);
}

// The status page under load with a member killed: its JSON twin has every
// figure, and the page as a browser renders it shows the member out of the
// pool, why, its failed checks, and sparklines drawn from real samples.
TEST_F(BalancerTest, TheStatusPageShowsAFailingMemberWhyAndSparklines) {
  testing::RequireInstalled("/usr/bin/chromium");
  Backend a("a"), b("b");
  Register(a.member());
  Register(b.member());
  StartBalancer({"--health-interval-ms", "200"});
  ASSERT_TRUE(WaitFor([&] { return balancer_->HealthyCount() == 2; }, 10s));
  LoadGenerator load(LoadGenerator::Options{.port = balancer_->port(), .threads = 2, .rate_per_sec = 200});
  load.Start();
  std::this_thread::sleep_for(3s);  // three samples at least
  b.process().Kill();
  ASSERT_TRUE(WaitFor([&] {
    const json mb = MemberStatus("b");
    return mb.is_object() && mb["state"] != "healthy" && !mb["ejection_reasons"].empty();
  }, 10s)) << balancer_->StatusBody();
  std::this_thread::sleep_for(1500ms);  // failed checks after the ejection
  load.Stop();

  const json s = Status();
  const json& t = s["totals"];
  EXPECT_GT(t["answers"].get<double>(), 0) << t;
  EXPECT_GT(t["codes"]["2xx"].get<double>(), 0) << t;
  EXPECT_GT(t["plain"].get<double>(), 0) << t;
  EXPECT_GE(t["spark"]["answers"].size(), 3u) << t;
  const json ma = MemberStatus("a");
  EXPECT_GT(ma["rate"].get<double>(), 0) << ma;
  EXPECT_GT(ma["peak_rate"].get<double>(), 0) << ma;
  EXPECT_GT(ma["codes"]["2xx"].get<double>(), 0) << ma;
  EXPECT_TRUE(ma["p50_ms"].is_number() && ma["p99_ms"].get<double>() >= ma["p50_ms"].get<double>()) << ma;
  EXPECT_GT(ma["bytes_in"].get<double>(), 0) << ma;
  EXPECT_GT(ma["bytes_out"].get<double>(), 0) << ma;
  EXPECT_EQ(ma["cache"]["other"], ma["answers"]) << ma;  // the echo backend sends no X-Cache
  EXPECT_EQ(ma["checks"][0]["result"], "pass") << ma;
  EXPECT_EQ(ma["downtime_s"], 0) << ma;
  const json mb = MemberStatus("b");
  EXPECT_NE(mb["checks"][0]["result"], "pass") << mb;
  EXPECT_GE(mb["downtime_s"].get<double>(), 1) << mb;
  const std::string reason = mb["ejection_reasons"][0]["reason"];
  EXPECT_FALSE(reason.empty()) << mb;

  const std::string dom = testing::RenderedDom(Admin("/"));
  const std::string row_b = Element(dom, "<tr class=\"member\" id=\"member-b\"", "</tr>");
  ASSERT_FALSE(row_b.empty()) << dom.substr(0, 2000);
  EXPECT_EQ(row_b.find("data-state=\"healthy\""), std::string::npos) << row_b;
  EXPECT_NE(row_b.find(">" + reason + ": "), std::string::npos) << row_b;
  EXPECT_TRUE(row_b.find("class=\"dot fail\"") != std::string::npos || row_b.find("class=\"dot timeout\"") != std::string::npos)
      << row_b;
  const std::string row_a = Element(dom, "<tr class=\"member\" id=\"member-a\"", "</tr>");
  const std::string spark_a = Element(row_a, "<svg class=\"spark\"", "</svg>");
  EXPECT_NE(spark_a.find("<polyline class=\"answers\""), std::string::npos) << row_a;
  EXPECT_EQ(spark_a.find("data-points=\"0\""), std::string::npos) << spark_a;
  EXPECT_EQ(spark_a.find("data-points=\"1\""), std::string::npos) << spark_a;
  EXPECT_NE(Element(dom, "<b id=\"total-spark\"", "</b>").find("<polyline class=\"answers\""), std::string::npos);
  // The picture in docs/operating.md is made this way (WEBTIER_STATUS_SCREENSHOT=path).
  if (const char* shot = std::getenv("WEBTIER_STATUS_SCREENSHOT")) {
    testing::RenderedDom(Admin("/"), shot);
    EXPECT_TRUE(std::filesystem::exists(shot)) << shot;
  }
}

TEST_F(BalancerTest, MemberFailingItsChecksGetsNoTrafficAndStatusSaysWhy) {
  Backend a("a"), b("b");
  FixedStatusMember failing(404);  // no /health route: never admitted
  Register(a.member());
  Register(b.member());
  Register(failing.member());
  StartBalancer({"--health-interval-ms", "100", "--zone", "test"});
  ASSERT_TRUE(WaitFor([&] { return MemberStatus("fixed").is_object() && MemberStatus("fixed")["health"] == "unhealthy"; }, 10s))
      << balancer_->StatusBody();
  ASSERT_TRUE(WaitFor([&] { return balancer_->HealthyCount() == 2; }, 5s));
  const int hits_before = failing.hits();
  auto counts = Shares(20);
  EXPECT_EQ(counts["a"], 10);
  EXPECT_EQ(counts["b"], 10);
  EXPECT_EQ(counts.count("fixed"), 0u);
  json s = Status();
  EXPECT_EQ(s["zone"], "test");
  const json fixed = MemberStatus("fixed");
  EXPECT_EQ(fixed["state"], "unhealthy");
  EXPECT_EQ(fixed["last_check"], "fail");
  EXPECT_EQ(fixed["ejections"], 0);
  const json ma = MemberStatus("a");
  EXPECT_EQ(ma["health"], "healthy");
  EXPECT_EQ(ma["last_check"], "pass");
  EXPECT_EQ(failing.hits(), hits_before) << "requests reached a member failing its checks";
  const std::string text = balancer_->Metrics();
  EXPECT_GE(MetricValue(text, "balancer_health_checks_total", {{"member", "fixed"}, {"result", "fail"}}).value_or(0), 3);
  EXPECT_GE(MetricValue(text, "balancer_health_checks_total", {{"member", "a"}, {"result", "pass"}}).value_or(0), 1);
  EXPECT_EQ(MetricValue(text, "balancer_pool_members", {{"state", "unhealthy"}}), 1);
  EXPECT_EQ(MetricValue(text, "balancer_locality_requests_total", {{"locality", "local"}}), 20);
  // Checks off: every registered member takes traffic at once.
  balancer_->Stop();
  StartBalancer({"--health-path", ""});
  ASSERT_TRUE(WaitFor([&] { return balancer_->HealthyCount() == 3; }, 10s));
  EXPECT_EQ(MemberStatus("fixed")["health"], "unchecked");
  std::set<std::string> served;
  for (int i = 0; i < 3; ++i) served.insert(HttpGet(Url("/")).header("x-served-by"));
  EXPECT_EQ(served.size(), 3u) << "round robin over all three, checked or not";
}

TEST_F(BalancerTest, GatewayErrorsAreRetriedElsewhereAndTheMemberEjected) {
  Backend a("a");
  FixedStatusMember gray(503);
  Register(a.member());
  Register(gray.member());
  // Its /health answers 503 too: checks off, so only the answers count.
  // Outlier ejection off first: an idempotent request never sees the 503, a
  // POST (the member may have acted on it) gets it.
  StartBalancer({"--health-path", "", "--outlier-consecutive-5xx", "0"});
  ASSERT_TRUE(WaitMembers(2));
  std::map<int, int> get_status, post_status;
  for (int i = 0; i < 6; ++i) post_status[HttpRequest("POST", Url("/"), {}, "x").status]++;
  for (int i = 0; i < 6; ++i) get_status[HttpGet(Url("/")).status]++;
  EXPECT_EQ(get_status[200], 6);
  EXPECT_EQ(post_status[503], 3) << "every other POST lands on the member answering 503";
  EXPECT_GE(Metric("balancer_retries_total"), 3);
  balancer_->Stop();

  StartBalancer({"--health-path", "", "--outlier-consecutive-5xx", "3"});
  ASSERT_TRUE(WaitMembers(2));
  const int before = gray.hits();
  for (int i = 0; i < 8; ++i) {
    auto r = HttpGet(Url("/"));
    EXPECT_EQ(r.status, 200) << "the 503 goes to another member";
    EXPECT_EQ(r.header("x-served-by"), "a");
  }
  EXPECT_EQ(gray.hits() - before, 3) << "ejected after its third 503 in a row";
  EXPECT_EQ(MemberStatus("fixed")["state"], "ejected");
  EXPECT_EQ(MemberStatus("fixed")["ejections"], 1);
  EXPECT_EQ(Metric("balancer_outlier_ejections_total", {{"member", "fixed"}, {"reason", "5xx"}}), 1);
}

// TLS on the balancer process: HTTPS to a member registered in ZooKeeper
// (X-Forwarded-Proto https), and SIGHUP: a keep-alive TLS connection opened
// before the reload keeps working, new connections get the new certificate,
// and a bad new file is logged, counted and changes nothing.
TEST_F(BalancerTest, TlsServesHttpsAndSighupReloadsTheCertificateWithoutDroppingConnections) {
  TempDir dir("tls");
  const testing::TlsFiles files = testing::WriteSelfSignedCert(dir.path(), "server", "one.test");
  Backend a("a");
  Register(a.member());
  StartBalancer({"--tls-listen", "127.0.0.1:0", "--tls-cert", files.cert, "--tls-key", files.key});
  ASSERT_TRUE(WaitMembers(1));
  const uint16_t tls_port = testing::WaitListeningPort(balancer_->process(), "tls");

  testing::TlsClient before(tls_port);
  ASSERT_TRUE(before.Handshake()) << before.error();
  EXPECT_EQ(before.peer_common_name(), "one.test");
  std::string res = before.Get("/");
  ASSERT_NE(res.find("HTTP/1.1 200 OK"), std::string::npos) << res;
  EXPECT_NE(res.find("\"x-forwarded-proto\":\"https\""), std::string::npos) << res;

  testing::WriteSelfSignedCert(dir.path(), "server", "two.test");  // the same files, a new pair
  balancer_->process().Signal(SIGHUP);
  ASSERT_TRUE(WaitFor([&] { return Metric("balancer_tls_reloads_total", {{"result", "ok"}}) == 1; }, 5s));
  res = before.Get("/");  // the same connection, after the reload
  EXPECT_NE(res.find("HTTP/1.1 200 OK"), std::string::npos) << res;
  {
    testing::TlsClient after(tls_port);
    ASSERT_TRUE(after.Handshake()) << after.error();
    EXPECT_EQ(after.peer_common_name(), "two.test");
    EXPECT_NE(after.Get("/").find("HTTP/1.1 200 OK"), std::string::npos);
  }

  std::ofstream(files.cert) << "not a certificate\n";
  balancer_->process().Signal(SIGHUP);
  ASSERT_TRUE(WaitFor([&] { return Metric("balancer_tls_reloads_total", {{"result", "failed"}}) == 1; }, 5s));
  // The harness reads the process's log from a pipe: the line may come a little after the count.
  EXPECT_TRUE(WaitFor([&] { return balancer_->process().Log().find("certificate reload failed") != std::string::npos; },
                      5s));
  testing::TlsClient kept(tls_port);
  ASSERT_TRUE(kept.Handshake()) << kept.error();
  EXPECT_EQ(kept.peer_common_name(), "two.test");
  EXPECT_NE(before.Get("/").find("HTTP/1.1 200 OK"), std::string::npos);
  // A TLS 1.3 client is done before the balancer has read its Finished, and
  // `kept` sends nothing after it: its handshake may be counted a moment later.
  EXPECT_TRUE(WaitFor([&] { return Metric("balancer_tls_handshakes_total", {{"result", "full"}}) >= 3; }, 5s))
      << Metric("balancer_tls_handshakes_total", {{"result", "full"}});
}

// The repository's HTTP/2 conformance suite (tests/h2/conformance.py, raw
// frames on python3-h2's codec parts) against the balancer binary, over h2c
// and over TLS, in front of a real member: every RFC 9113 and RFC 7541 rule
// it checks, and each flood it knows, must end as the RFCs say.
TEST_F(BalancerTest, Http2ConformanceSuitePassesOverH2cAndTls) {
  testing::RequireInstalled("/usr/bin/python3");
  TempDir dir("h2-conformance");
  const testing::TlsFiles files = testing::WriteSelfSignedCert(dir.path(), "server", "h2.test");
  Backend a("a");
  Register(a.member());
  StartBalancer({"--tls-listen", "127.0.0.1:0", "--tls-cert", files.cert, "--tls-key", files.key});
  ASSERT_TRUE(WaitMembers(1));
  const uint16_t tls_port = testing::WaitListeningPort(balancer_->process(), "tls");
  for (const bool tls : {false, true}) {
    std::vector<std::string> argv = {"/usr/bin/python3", WEBTIER_SOURCE_DIR "/tests/h2/conformance.py", "--port",
                                     std::to_string(tls ? tls_port : balancer_->port()), "--path", "/page"};
    if (tls) argv.push_back("--tls");
    Process suite(Process::Options{.argv = argv});
    const std::optional<int> code = suite.Wait(120s);
    const std::string out = suite.Log();
    EXPECT_EQ(code, 0) << (tls ? "TLS" : "h2c") << "\n" << out;
    EXPECT_NE(out.find(" 0 failed"), std::string::npos) << out;
  }
  // The floods were cut short and counted.
  EXPECT_GT(Metric("balancer_h2_abuse_total", {{"kind", "rapid_reset"}}), 0);
  EXPECT_GT(Metric("balancer_h2_abuse_total", {{"kind", "continuation_flood"}}), 0);
  // And the balancer serves as before.
  EXPECT_EQ(HttpGet(Url("/after")).status, 200);
}

// Bad TLS flags stop the program at start with exit code 2 and one line.
TEST(BalancerTlsFlags, MissingOrBadFilesExitTwo) {
  TempDir dir("tls-flags");
  const testing::TlsFiles files = testing::WriteSelfSignedCert(dir.path(), "server", "one.test");
  const testing::TlsFiles other = testing::WriteSelfSignedCert(dir.path(), "other", "other.test");
  std::ofstream(dir.path() + "/garbage.pem") << "garbage\n";
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--tls-cert", files.cert}, "--tls-key: required"},
      {{"--tls-cert", dir.path() + "/missing.crt", "--tls-key", files.key}, "--tls-cert: cannot read"},
      {{"--tls-cert", dir.path() + "/garbage.pem", "--tls-key", files.key}, "--tls-cert: no PEM certificate"},
      {{"--tls-cert", files.cert, "--tls-key", dir.path() + "/garbage.pem"}, "--tls-key: no usable PEM private key"},
      {{"--tls-cert", files.cert, "--tls-key", other.key}, "--tls-key:"},
  };
  for (const auto& [args, expected] : cases) {
    std::vector<std::string> argv = {BinaryPath("balancer"), "--zk", "127.0.0.1:1", "--tls-listen", "127.0.0.1:0"};
    argv.insert(argv.end(), args.begin(), args.end());
    Process p(Process::Options{.argv = argv, .env = {}, .log_path = {}, .cwd = {}});
    EXPECT_EQ(p.Wait(10s), 2) << expected;
    EXPECT_NE(p.Log().find(expected), std::string::npos) << p.Log();
  }
}

// --- Access log, request ids and trace context ---------------------------

// The access log's lines so far (JSON), each parsed.
std::vector<json> AccessLines(const std::string& path) {
  std::vector<json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) out.push_back(json::parse(line, nullptr, false));
  return out;
}

// The first line for which `match` holds, waiting for it to be written.
json AccessLine(const std::string& path, const std::function<bool(const json&)>& match) {
  json found;
  WaitFor(
      [&] {
        for (const auto& j : AccessLines(path)) {
          if (j.is_object() && match(j)) {
            found = j;
            return true;
          }
        }
        return false;
      },
      10s);
  return found;
}

bool HasFlag(const json& line, const std::string& flag) {
  for (const auto& f : line.value("flags", json::array())) {
    if (f == flag) return true;
  }
  return false;
}

TEST_F(BalancerTest, TheAccessLogSaysWhoAnsweredAndWhyForEveryKindOfAnswer) {
  TempDir dir("access-log");
  const std::string log = dir.path() + "/access.log";
  Backend ok("ok-1");
  FixedStatusMember failing(503);
  const uint16_t dead_port = FreePort();  // nothing listens there
  Register(ok.member());
  Register(failing.member());
  Register({.id = "dead", .host = "127.0.0.1", .port = dead_port, .zone = "test"});
  StartBalancer({"--access-log", log, "--health-path", "", "--outlier-consecutive-5xx", "0", "--retries", "2",
                 "--request-timeout-ms", "500", "--max-header-bytes", "4096"});
  ASSERT_TRUE(WaitListed(3));

  // A member's own answer, on the first try: every field, exactly.
  const std::string parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  const std::string request = "GET /echo/plain?x=1 HTTP/1.1\r\nHost: localhost\r\nUser-Agent: access-test/1\r\n"
                              "X-Request-Id: client-id-1\r\ntraceparent: " + parent + "\r\nConnection: close\r\n\r\n";
  std::string answer;
  // Round robin: up to three tries until ok-1 answered on the first attempt.
  json line;
  for (int i = 0; i < 6 && line.is_null(); ++i) {
    answer = RawExchange(balancer_->port(), request, 5s);
    line = AccessLine(log, [&](const json& j) {
      return j["request_id"] == "client-id-1" && j["attempts"] == 1 && j["status"] == 200;
    });
  }
  ASSERT_TRUE(line.is_object()) << "no first-try answer from ok-1 logged";
  EXPECT_EQ(line["client"], "127.0.0.1");
  EXPECT_EQ(line["protocol"], "HTTP/1.1");
  EXPECT_EQ(line["tls"], false);
  EXPECT_EQ(line["method"], "GET");
  EXPECT_EQ(line["authority"], "localhost");
  EXPECT_EQ(line["path"], "/echo/plain?x=1");
  EXPECT_EQ(line["bytes_in"], request.size());
  EXPECT_EQ(line["bytes_out"], answer.size());
  EXPECT_EQ(line["member"], "ok-1");
  EXPECT_EQ(line["member_addr"], "127.0.0.1:" + std::to_string(ok.member().port));
  EXPECT_EQ(line["flags"], json::array());
  EXPECT_EQ(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(line["user_agent"], "access-test/1");
  EXPECT_TRUE(line["cache"].is_null());
  EXPECT_GE(line["connect_ms"].get<double>(), 0.0) << "a first request gets a connection of its own";
  EXPECT_GE(line["upstream_ms"].get<double>(), 0.0);
  EXPECT_GE(line["duration_ms"].get<double>(), line["upstream_ms"].get<double>());
  EXPECT_TRUE(line["time"].get<std::string>().ends_with("Z"));

  // Retries: the dead member's refused connect, the failing member's 503.
  for (int i = 0; i < 9; ++i) EXPECT_EQ(HttpGet(Url("/echo/retried")).status, 200);
  const json connect_failed = AccessLine(log, [](const json& j) { return HasFlag(j, "connect_failed"); });
  ASSERT_TRUE(connect_failed.is_object()) << "no connect_failed line";
  EXPECT_EQ(connect_failed["status"], 200);
  EXPECT_GE(connect_failed["attempts"], 2);
  const json retried_5xx = AccessLine(log, [](const json& j) { return HasFlag(j, "member_5xx"); });
  ASSERT_TRUE(retried_5xx.is_object()) << "no member_5xx line";
  EXPECT_EQ(retried_5xx["status"], 200);
  EXPECT_EQ(retried_5xx["member"], "ok-1");

  // A member that does not answer in time: 504, member_timeout.
  EXPECT_EQ(HttpGet(Url("/sleep/3000"), 10s).status, 504);
  const json timeout = AccessLine(log, [](const json& j) { return HasFlag(j, "member_timeout"); });
  ASSERT_TRUE(timeout.is_object());
  EXPECT_EQ(timeout["status"], 504);
  EXPECT_EQ(timeout["path"], "/sleep/3000");

  // Refused by the balancer itself, never sent to a member.
  struct Refusal {
    std::string raw, flag;
    int status;
  };
  const std::vector<Refusal> refusals = {
      {"GARBAGE\r\n\r\n", "bad_request", 400},
      {"POST /s HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
       "framing_refused", 400},
      {"GET /big HTTP/1.1\r\nHost: localhost\r\nX-Big: " + std::string(8000, 'b') + "\r\n\r\n", "limit", 431},
      {"GET /admin/purge HTTP/1.1\r\nHost: localhost\r\n\r\n", "admin_path", 404},
  };
  for (const auto& r : refusals) {
    const std::string got = RawExchange(balancer_->port(), r.raw, 5s);
    EXPECT_EQ(got.rfind("HTTP/1.1 " + std::to_string(r.status), 0), 0u) << r.flag << ": " << got;
    const json l = AccessLine(log, [&](const json& j) { return HasFlag(j, r.flag); });
    ASSERT_TRUE(l.is_object()) << "no " << r.flag << " line";
    EXPECT_EQ(l["status"], r.status) << r.flag;
    EXPECT_TRUE(l["member"].is_null()) << r.flag;
    EXPECT_EQ(l["attempts"], 0) << r.flag;
    EXPECT_EQ(l["bytes_out"], got.size()) << r.flag;
  }

  // A client that leaves while its request is with a member: status 0.
  const int fd = testing::ConnectLoopback(balancer_->port(), 5s);
  ASSERT_GE(fd, 0);
  testing::SendAll(fd, "GET /sleep/400 HTTP/1.1\r\nHost: localhost\r\n\r\n");
  std::this_thread::sleep_for(100ms);
  ::close(fd);
  const json gone = AccessLine(log, [](const json& j) { return HasFlag(j, "client_gone"); });
  ASSERT_TRUE(gone.is_object()) << "no client_gone line";
  EXPECT_EQ(gone["status"], 0);
  EXPECT_EQ(gone["path"], "/sleep/400");

  // Counted: every line written, none dropped.
  EXPECT_TRUE(WaitFor([&] { return Metric("balancer_access_log_lines_total", {{"result", "written"}}) >=
                                   static_cast<double>(AccessLines(log).size()); }, 5s));
  EXPECT_EQ(Metric("balancer_access_log_lines_total", {{"result", "dropped"}}), 0);
}

TEST_F(BalancerTest, AnEmptyPoolAndAMisdirectedHostAreLoggedAsText) {
  TempDir dir("access-log");
  const std::string log = dir.path() + "/access.log";
  StartBalancer({"--access-log", log, "--access-log-format", "text", "--host", "localhost"});
  const std::string empty = RawExchange(balancer_->port(), "GET /nothing HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", 5s);
  EXPECT_EQ(empty.rfind("HTTP/1.1 503", 0), 0u) << empty;
  const std::string elsewhere =
      RawExchange(balancer_->port(), "GET /elsewhere HTTP/1.1\r\nHost: evil.example\r\n\r\n", 5s);
  EXPECT_EQ(elsewhere.rfind("HTTP/1.1 421", 0), 0u) << elsewhere;
  std::vector<std::string> lines;
  ASSERT_TRUE(WaitFor([&] {
    lines.clear();
    std::ifstream in(log);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines.size() >= 2;
  }, 10s)) << "fewer than two lines";
  // Two connections may land on two workers, whose lines are written shard
  // by shard: found by what they say, not by their order.
  auto has = [](const std::string& line, const std::string& part) { return line.find(part) != std::string::npos; };
  const bool empty_first = has(lines[0], " path=/nothing ");
  const std::string& empty_line = empty_first ? lines[0] : lines[1];
  const std::string& elsewhere_line = empty_first ? lines[1] : lines[0];
  EXPECT_TRUE(has(empty_line, " path=/nothing ") && has(empty_line, " status=503 ") &&
              has(empty_line, " flags=no_member ") && has(empty_line, " attempts=0 ") && has(empty_line, " member=- "))
      << empty_line;
  EXPECT_TRUE(has(elsewhere_line, " authority=evil.example ") && has(elsewhere_line, " status=421 ") &&
              has(elsewhere_line, " flags=misdirected "))
      << elsewhere_line;
}

TEST_F(BalancerTest, AccessLogRotationUnderLoadLosesNoLine) {
  TempDir dir("access-log");
  const std::string log = dir.path() + "/access.log";
  Backend a("rot-a");
  Register(a.member());
  StartBalancer({"--access-log", log});
  ASSERT_TRUE(WaitMembers(1));
  auto load = StartLoad(4);
  ASSERT_TRUE(WaitFor([&] { return load->Snapshot().ok >= 300; }, 30s));
  // logrotate's create mode: rename, then SIGUSR1; twice.
  std::filesystem::rename(log, log + ".1");
  ::kill(balancer_->process().pid(), SIGUSR1);
  ASSERT_TRUE(WaitFor([&] { return std::filesystem::exists(log); }, 5s)) << "not reopened";
  const uint64_t at_rotation = load->Snapshot().ok;
  ASSERT_TRUE(WaitFor([&] { return load->Snapshot().ok >= at_rotation + 300; }, 30s));
  std::filesystem::rename(log, log + ".2");
  ::kill(balancer_->process().pid(), SIGUSR1);
  ASSERT_TRUE(WaitFor([&] { return std::filesystem::exists(log); }, 5s)) << "not reopened";
  ASSERT_TRUE(WaitFor([&] { return load->Snapshot().ok >= at_rotation + 600; }, 30s));
  load->Stop();
  const LoadStats s = load->Snapshot();
  EXPECT_EQ(s.failed, 0u) << s.Describe();
  // Every answer the load got has its line, across the three files. Stopping
  // the load may abandon a request in flight, whose line says status 0
  // (client_gone): only the 200s are compared with the 200s counted.
  const double requests = Metric("balancer_requests_total", {{"code", "200"}});
  auto answered = [](const std::string& path) {
    size_t n = 0;
    for (const json& j : AccessLines(path)) n += j.is_object() && j["status"] == 200;
    return n;
  };
  size_t lines = 0;
  ASSERT_TRUE(WaitFor([&] {
    lines = answered(log + ".1") + answered(log + ".2") + answered(log);
    return static_cast<double>(lines) >= requests;
  }, 10s)) << lines << " lines for " << requests << " requests";
  EXPECT_EQ(static_cast<double>(lines), requests);
  EXPECT_GT(AccessLines(log + ".1").size(), 0u);
  EXPECT_GT(AccessLines(log + ".2").size(), 0u);
  EXPECT_GT(AccessLines(log).size(), 0u);
  EXPECT_EQ(Metric("balancer_access_log_lines_total", {{"result", "dropped"}}), 0);
}

// traceparent through balancer -> webnode -> origin: the origin sees the
// client's trace with the balancer's span as parent, and the request id the
// access log names; a malformed traceparent is replaced by a new trace.
TEST_F(BalancerTest, TraceContextAndRequestIdReachTheOriginThroughAWebnode) {
  try {
    BinaryPath("webnode");
  } catch (const std::exception& e) {
    GTEST_SKIP() << e.what();
  }
  testing::EchoBackend origin("origin");
  testing::RedisServer redis;
  redis.Start();
  TempDir dir("access-log");
  const std::string log = dir.path() + "/access.log";
  testing::Webnode node("trace-node", zk_.connect(),
                        {"--origin", "http://127.0.0.1:" + std::to_string(origin.port()), "--redis", redis.address()});
  node.WaitHealthy();
  ASSERT_TRUE(node.WaitReady());
  StartBalancer({"--access-log", log});
  ASSERT_TRUE(WaitMembers(1));

  const std::string trace = "0af7651916cd43dd8448eb211c80319c";
  const std::string client_parent = "b7ad6b7169203331";
  auto r = HttpRequest("GET", Url("/traced/1"),
                       {"traceparent: 00-" + trace + "-" + client_parent + "-01", "tracestate: congo=t61rcWkgMzE"});
  ASSERT_EQ(r.status, 200) << r.body;
  json seen = json::parse(r.body, nullptr, false);
  ASSERT_TRUE(seen.is_object()) << r.body;
  const std::string got = seen["headers"].value("traceparent", "");
  ASSERT_EQ(got.size(), 55u) << r.body;
  EXPECT_EQ(got.substr(0, 3 + 32), "00-" + trace) << "the origin is in the client's trace";
  EXPECT_NE(got.substr(36, 16), client_parent) << "its parent is the balancer's span, not the client's";
  EXPECT_EQ(got.substr(53), "01") << "the client's sampling decision goes on";
  EXPECT_EQ(seen["headers"].value("tracestate", ""), "congo=t61rcWkgMzE");
  const std::string request_id = seen["headers"].value("x-request-id", "");
  EXPECT_EQ(request_id.size(), 32u);
  EXPECT_EQ(r.header("x-request-id"), request_id) << "the client gets the id back";
  json line = AccessLine(log, [&](const json& j) { return j["path"] == "/traced/1"; });
  ASSERT_TRUE(line.is_object());
  EXPECT_EQ(line["trace_id"], trace);
  EXPECT_EQ(line["request_id"], request_id);
  EXPECT_EQ(line["member"], "trace-node");
  EXPECT_EQ(line["cache"], r.header("x-cache")) << "the webnode's cache verdict is in the line";
  EXPECT_FALSE(r.header("x-cache").empty());

  // Malformed: replaced by a new trace the origin and the log agree on; its
  // tracestate goes nowhere.
  r = HttpRequest("GET", Url("/traced/2"), {"traceparent: 00-" + trace + "-zzzz-01", "tracestate: a=b"});
  ASSERT_EQ(r.status, 200) << r.body;
  seen = json::parse(r.body, nullptr, false);
  const std::string fresh = seen["headers"].value("traceparent", "");
  ASSERT_EQ(fresh.size(), 55u) << r.body;
  EXPECT_NE(fresh.substr(3, 32), trace);
  EXPECT_EQ(fresh.substr(53), "00");
  EXPECT_FALSE(seen["headers"].contains("tracestate")) << r.body;
  line = AccessLine(log, [&](const json& j) { return j["path"] == "/traced/2"; });
  ASSERT_TRUE(line.is_object());
  EXPECT_EQ(line["trace_id"], fresh.substr(3, 32));
}

// A small OpenTelemetry collector: takes OTLP/HTTP JSON POSTs (answers 200)
// and keeps every span it was sent.
class OtlpCollector {
 public:
  OtlpCollector() {
    fd_ = testing::ListenLoopback(&port_);
    thread_ = std::thread([this] {
      for (;;) {
        const int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        std::string in;
        char buf[65536];
        size_t want = std::string::npos;
        for (ssize_t n; in.size() < want && (n = ::recv(c, buf, sizeof buf, 0)) > 0;) {
          in.append(buf, static_cast<size_t>(n));
          const size_t end = in.find("\r\n\r\n");
          const size_t length = in.find("Content-Length: ");
          if (want == std::string::npos && end != std::string::npos && length < end)
            want = end + 4 + std::stoul(in.substr(length + 16));
        }
        const size_t end = in.find("\r\n\r\n");
        const json body = json::parse(end == std::string::npos ? "" : in.substr(end + 4), nullptr, false);
        {
          std::lock_guard lock(mu_);
          if (body.is_object()) {
            for (const auto& rs : body["resourceSpans"]) {
              const std::string service = rs["resource"]["attributes"][0]["value"]["stringValue"];
              for (const auto& ss : rs["scopeSpans"]) {
                for (json span : ss["spans"]) {
                  span["service"] = service;
                  spans_.push_back(std::move(span));
                }
              }
            }
          }
        }
        testing::SendAll(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
        ::close(c);
      }
    });
  }
  ~OtlpCollector() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1/traces"; }
  std::vector<json> Spans() {
    std::lock_guard lock(mu_);
    return spans_;
  }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
  std::mutex mu_;
  std::vector<json> spans_;
  std::thread thread_;
};

// An attribute's value as a string (stringValue, or intValue as sent).
std::string SpanAttribute(const json& span, const std::string& key) {
  for (const auto& a : span.value("attributes", json::array())) {
    if (a["key"] != key) continue;
    if (a["value"].contains("stringValue")) return a["value"]["stringValue"];
    if (a["value"].contains("intValue")) return a["value"]["intValue"];
  }
  return "";
}

// --otlp-endpoint on both programs: the balancer's span continues the
// client's trace, with each attempt as an event; the webnode's span is its
// child and the parent the origin sees; both reach the collector.
TEST_F(BalancerTest, SpansOfBothProgramsReachACollectorAsOneTrace) {
  OtlpCollector collector;
  testing::EchoBackend origin("origin");
  testing::RedisServer redis;
  redis.Start();
  testing::Webnode node("span-node", zk_.connect(),
                        {"--origin", "http://127.0.0.1:" + std::to_string(origin.port()), "--redis", redis.address(),
                         "--otlp-endpoint", collector.url()});
  node.WaitHealthy();
  ASSERT_TRUE(node.WaitReady());
  // A member that refuses connections: a request that tries it first is
  // retried on the node, which its span shows as two attempts.
  Register({.id = "dead", .host = "127.0.0.1", .port = FreePort(), .zone = "test"});
  StartBalancer({"--health-path", "", "--otlp-endpoint", collector.url(), "--retries", "2"});
  ASSERT_TRUE(WaitMembers(2));

  const std::string trace = "4bf92f3577b34da6a3ce929d0e0e4736";
  const std::string client_parent = "00f067aa0ba902b7";
  std::map<std::string, std::string> origin_parent;  // path -> the parent span the origin saw
  for (int i = 0; i < 3; ++i) {
    const std::string path = "/spans/" + std::to_string(i);
    auto r = HttpRequest("GET", Url(path), {"traceparent: 00-" + trace + "-" + client_parent + "-01"});
    ASSERT_EQ(r.status, 200) << r.body << balancer_->StatusBody() << balancer_->process().Log();
    const json seen = json::parse(r.body, nullptr, false);
    origin_parent[path] = seen["headers"].value("traceparent", "").substr(36, 16);
  }
  std::vector<json> spans;
  auto ours = [&](const std::string& service) {
    std::vector<json> out;
    for (const json& s : spans) {
      if (s["service"] == service && s["traceId"] == trace) out.push_back(s);
    }
    return out;
  };
  ASSERT_TRUE(WaitFor([&] {
    spans = collector.Spans();
    return ours("webtier-balancer").size() >= 3 && ours("webtier-webnode").size() >= 6;
  }, 15s)) << spans.size() << " spans";
  bool retried = false;
  for (const json& b : ours("webtier-balancer")) {
    EXPECT_EQ(b["parentSpanId"], client_parent) << b;
    EXPECT_EQ(b["kind"], 2) << b;
    EXPECT_EQ(b["name"], "GET") << b;
    EXPECT_EQ(SpanAttribute(b, "http.response.status_code"), "200") << b;
    EXPECT_EQ(SpanAttribute(b, "webtier.member"), "span-node") << b;
    EXPECT_EQ(SpanAttribute(b, "webtier.request_id").size(), 32u) << b;
    EXPECT_LE(std::stoull(b["startTimeUnixNano"].get<std::string>()), std::stoull(b["endTimeUnixNano"].get<std::string>()));
    const json events = b.value("events", json::array());
    ASSERT_FALSE(events.empty()) << b;
    EXPECT_EQ(SpanAttribute(events.back(), "webtier.outcome"), "answered") << b;
    if (events.size() == 2) {
      retried = true;
      EXPECT_EQ(SpanAttribute(events[0], "webtier.member"), "dead") << b;
      EXPECT_EQ(SpanAttribute(events[0], "webtier.outcome"), "connect_failed") << b;
      EXPECT_EQ(SpanAttribute(b, "webtier.flags"), "connect_failed") << b;
    }
    // The node's span is the balancer span's child; its origin fetch is a
    // span of its own under it, and the origin's parent.
    const std::string path = SpanAttribute(b, "url.path");
    int children = 0;
    for (const json& w : ours("webtier-webnode")) {
      if (w["parentSpanId"] != b["spanId"]) continue;
      ++children;
      EXPECT_EQ(w["kind"], 2) << w;
      EXPECT_EQ(SpanAttribute(w, "url.path"), path) << w;
      EXPECT_EQ(SpanAttribute(w, "http.response.status_code"), "200") << w;
      EXPECT_EQ(SpanAttribute(w, "webtier.cache"), "MISS") << w;
      int fetches = 0;
      for (const json& f : ours("webtier-webnode")) {
        if (f["parentSpanId"] != w["spanId"]) continue;
        ++fetches;
        EXPECT_EQ(f["kind"], 3) << f;
        EXPECT_EQ(SpanAttribute(f, "url.full"), "http://127.0.0.1:" + std::to_string(origin.port()) + path) << f;
        EXPECT_EQ(SpanAttribute(f, "http.response.status_code"), "200") << f;
        EXPECT_EQ(f["spanId"], origin_parent[path]) << f;
      }
      EXPECT_EQ(fetches, 1) << w;
    }
    EXPECT_EQ(children, 1) << b;
  }
  EXPECT_TRUE(retried) << "no request tried the dead member first";

  // A request refused before any member still shows in the client's trace.
  const std::string refused_trace = "5cf92f3577b34da6a3ce929d0e0e4737";
  EXPECT_EQ(HttpRequest("GET", Url("/admin/pool"), {"traceparent: 00-" + refused_trace + "-" + client_parent + "-01"})
                .status,
            404);
  json refused;
  ASSERT_TRUE(WaitFor([&] {
    for (const json& s : collector.Spans()) {
      if (s["service"] == "webtier-balancer" && s["traceId"] == refused_trace) refused = s;
    }
    return !refused.is_null();
  }, 15s));
  EXPECT_EQ(refused["parentSpanId"], client_parent) << refused;
  EXPECT_EQ(SpanAttribute(refused, "http.response.status_code"), "404") << refused;
  EXPECT_EQ(SpanAttribute(refused, "url.path"), "/admin/pool") << refused;
  EXPECT_EQ(SpanAttribute(refused, "webtier.flags"), "admin_path") << refused;
  EXPECT_EQ(SpanAttribute(refused, "webtier.attempts"), "0") << refused;
  EXPECT_EQ(SpanAttribute(refused, "webtier.member"), "") << refused;

  // An HTTP/2 stream (h2c) is a request like any other: its span continues
  // the client's trace, names the protocol, and the node's span is its child.
  const std::string h2_trace = "6df92f3577b34da6a3ce929d0e0e4738";
  {
    testing::H2Client h2(balancer_->port());
    ASSERT_TRUE(h2.ok()) << h2.error();
    const auto r = h2.Request("GET", "/spans/h2", {{"traceparent", "00-" + h2_trace + "-" + client_parent + "-01"}});
    ASSERT_EQ(r.status, 200) << r.body;
  }
  json h2_span;
  ASSERT_TRUE(WaitFor([&] {
    spans = collector.Spans();
    for (const json& s : spans) {
      if (s.value("service", "") == "webtier-balancer" && s.value("traceId", "") == h2_trace) h2_span = s;
    }
    return !h2_span.is_null();
  }, 15s));
  EXPECT_EQ(h2_span["parentSpanId"], client_parent) << h2_span;
  EXPECT_EQ(h2_span["name"], "GET") << h2_span;
  EXPECT_EQ(SpanAttribute(h2_span, "network.protocol.version"), "2") << h2_span;
  EXPECT_EQ(SpanAttribute(h2_span, "url.path"), "/spans/h2") << h2_span;
  EXPECT_EQ(SpanAttribute(h2_span, "http.response.status_code"), "200") << h2_span;
  EXPECT_EQ(SpanAttribute(h2_span, "webtier.member"), "span-node") << h2_span;
  EXPECT_EQ(SpanAttribute(h2_span, "webtier.request_id").size(), 32u) << h2_span;
  bool child = false;
  const std::string h2_span_id = h2_span.value("spanId", "");
  for (const json& w : spans) {
    // value(), not []: a root span has no parentSpanId, and [] on a const json must not miss.
    if (w.value("service", "") == "webtier-webnode" && w.value("parentSpanId", "") == h2_span_id) child = true;
  }
  EXPECT_TRUE(child) << "the node's span of the h2 request is the balancer span's child";
  EXPECT_GE(Metric("balancer_spans_total", {{"result", "exported"}}), 5);
  EXPECT_EQ(Metric("balancer_spans_total", {{"result", "dropped"}}), 0);
}

}  // namespace
}  // namespace webtier::balancer
