// The webnode as a process against a real ZooKeeper: what it registers, and
// how registration behaves through SIGTERM, SIGKILL, a ZooKeeper restart, a
// session expiry (SIGSTOP past the timeout) and ZooKeeper absent at start.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "webtier/common/serverset.h"
#include "webtier/common/zk_session.h"
#include "webtier/testing/harness.h"

namespace webtier {
namespace {

using namespace webtier::testing;

constexpr char kPath[] = "/webtier/nodes";

// Reads the membership the way the balancer does, from its own session.
class Observer {
 public:
  explicit Observer(const std::string& connect) : session_({.connect = connect, .session_timeout_ms = 10000}) {
    if (!session_.Start().ok() || !WaitFor([&] { return session_.connected(); }, 20s))
      throw std::runtime_error("observer could not connect to ZooKeeper");
  }
  // member znode name -> data; empty when the path is missing.
  std::map<std::string, std::string> Members() {
    std::map<std::string, std::string> out;
    std::vector<std::string> children;
    if (!session_.GetChildren(kPath, &children).ok()) return out;
    for (const auto& c : children) {
      std::string data;
      if (session_.Get(std::string(kPath) + "/" + c, &data).ok()) out[c] = data;
    }
    return out;
  }
  zk::Session& session() { return session_; }

 private:
  zk::Session session_;
};

class WebnodeTest : public ::testing::Test {
 protected:
  void SetUp() override { zk_.Start(); }
  ZooKeeperServer zk_;
};

TEST_F(WebnodeTest, RegistersServersetMemberAndServesBuiltInRoutes) {
  Webnode node("node-a", zk_.connect(), {"--zone", "z1", "--name", "Alpha"});
  node.WaitHealthy();
  ASSERT_TRUE(node.WaitReady());
  Observer obs(zk_.connect());
  auto members = obs.Members();
  ASSERT_EQ(members.size(), 1u);
  const auto& [name, data] = *members.begin();
  EXPECT_TRUE(name.size() == std::string("member_0000000000").size() && name.rfind("member_", 0) == 0) << name;
  serverset::Member m;
  ASSERT_TRUE(serverset::Decode(data, &m).ok()) << data;
  EXPECT_EQ(m.host, "127.0.0.1");
  EXPECT_EQ(m.port, node.port());
  EXPECT_EQ(m.id, "node-a");
  EXPECT_EQ(m.zone, "z1");
  EXPECT_EQ(m.weight, 100u);
  auto j = nlohmann::json::parse(data);
  EXPECT_EQ(j["status"], "ALIVE");
  EXPECT_EQ(j["additionalEndpoints"]["http"]["port"], node.port());

  auto root = HttpGet(node.url("/"));
  EXPECT_EQ(root.status, 200);
  EXPECT_EQ(root.header("x-served-by"), "node-a");
  EXPECT_EQ(nlohmann::json::parse(root.body), (nlohmann::json{{"message", "Hello from Alpha!"}, {"server", "node-a"}}));
  EXPECT_EQ(j["additionalEndpoints"]["admin"]["port"], node.admin_port());
  // The public /health says ok and nothing more; the details are on the admin listener.
  auto bare = HttpGet(node.url("/health"));
  EXPECT_EQ(bare.status, 200);
  EXPECT_EQ(bare.body, "ok\n");
  EXPECT_EQ(HttpGet(node.url("/metrics")).status, 404);
  EXPECT_EQ(HttpGet(node.url("/ready")).status, 404);
  auto health = HttpGet(node.admin_url("/health"));
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(nlohmann::json::parse(health.body)["status"], "healthy");
  EXPECT_EQ(nlohmann::json::parse(health.body)["origin"]["url"], "built-in demo app") << health.body;
  EXPECT_TRUE(nlohmann::json::parse(health.body).contains("redis")) << health.body;
  EXPECT_EQ(health.header("x-served-by"), "node-a");

  std::string metrics = node.Metrics();
  EXPECT_EQ(MetricValue(metrics, "webnode_zk_registered"), 1.0);
  EXPECT_EQ(MetricValue(metrics, "webnode_build_info", {{"version", "0.1.0"}}), 1.0);
  EXPECT_GE(MetricValue(metrics, "webnode_http_requests_total", {{"route", "/"}, {"method", "GET"}, {"code", "200"}}).value_or(0), 1.0);
  for (const char* name : {"process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds",
                           "process_start_time_seconds", "webnode_inflight_requests",
                           "webnode_zk_session_expirations_total", "webnode_http_request_duration_seconds_count"}) {
    EXPECT_TRUE(MetricValue(metrics, name).has_value()) << name << " missing";
  }
}

TEST_F(WebnodeTest, AdvertiseAndAutoDetectedHost) {
  Webnode adv("node-adv", zk_.connect(), {"--advertise", "10.9.8.7:9999"});
  // Listening on every interface: the host is the local address toward ZooKeeper.
  Process wild(Process::Options{.argv = {BinaryPath("webnode"), "--listen", "0.0.0.0:0", "--admin-listen", "127.0.0.1:0",
                                         "--zk", zk_.connect(), "--id", "node-wild", "--redis", ""},
                                .env = {}, .log_path = {}, .cwd = {}});
  const uint16_t port = WaitListeningPort(wild, "http");  // the bound port is the one registered
  Observer obs(zk_.connect());
  ASSERT_TRUE(WaitFor([&] { return obs.Members().size() == 2; }, 20s));
  std::map<std::string, serverset::Member> by_id;
  for (auto& [n, d] : obs.Members()) {
    serverset::Member m;
    ASSERT_TRUE(serverset::Decode(d, &m).ok());
    by_id[m.id] = m;
  }
  EXPECT_EQ(by_id["node-adv"].Address(), "10.9.8.7:9999");
  EXPECT_EQ(by_id["node-wild"].Address(), "127.0.0.1:" + std::to_string(port));
}

TEST_F(WebnodeTest, SigtermDeregistersFirstThenDrainsAndExitsZero) {
  Webnode node("node-t", zk_.connect(), {"--drain-ms", "1500"});
  node.WaitHealthy();
  ASSERT_TRUE(node.WaitReady());
  Observer obs(zk_.connect());
  ASSERT_EQ(obs.Members().size(), 1u);
  node.process().Signal(SIGTERM);
  // The znode goes while the process still serves its drain period.
  ASSERT_TRUE(WaitFor([&] { return obs.Members().empty(); }, 1s));
  EXPECT_TRUE(node.process().running());
  EXPECT_EQ(HttpGet(node.admin_url("/ready")).status, 503);
  EXPECT_EQ(HttpGet(node.url("/health")).status, 503) << "the balancer stops sending to a draining node";
  EXPECT_EQ(HttpGet(node.url("/")).status, 200);
  EXPECT_EQ(node.process().Wait(10s), 0);
}

TEST_F(WebnodeTest, SigkillLeavesZnodeOnlyUntilTheSessionTimeout) {
  Webnode node("node-k", zk_.connect(), {"--zk-session-timeout-ms", "2000"});
  ASSERT_TRUE(node.WaitReady());
  Observer obs(zk_.connect());
  ASSERT_EQ(obs.Members().size(), 1u);
  auto killed = std::chrono::steady_clock::now();
  node.process().Kill();
  EXPECT_EQ(obs.Members().size(), 1u) << "an ephemeral of a killed process lingers for the session timeout";
  ASSERT_TRUE(WaitFor([&] { return obs.Members().empty(); }, 10s));
  auto gone_after = std::chrono::steady_clock::now() - killed;
  EXPECT_LT(gone_after, 6s) << "znode outlived the 2 s session timeout by far";
}

TEST_F(WebnodeTest, ZooKeeperRestartOnSamePortKeepsExactlyOneZnode) {
  Webnode node("node-r", zk_.connect(), {"--zk-session-timeout-ms", "8000"});
  ASSERT_TRUE(node.WaitReady());
  std::string before;
  {
    Observer obs(zk_.connect());
    ASSERT_EQ(obs.Members().size(), 1u);
    before = obs.Members().begin()->first;
  }
  zk_.Stop();
  EXPECT_EQ(HttpGet(node.url("/")).status, 200) << "serving must not depend on ZooKeeper";
  zk_.Start();
  Observer obs(zk_.connect());
  ASSERT_TRUE(WaitFor([&] { return HttpGet(node.admin_url("/health")).body.find("\"zk\":\"connected\"") != std::string::npos; }, 20s));
  // Give a duplicate create every chance to show up before asserting.
  ASSERT_TRUE(node.WaitReady());
  auto members = obs.Members();
  ASSERT_EQ(members.size(), 1u);
  EXPECT_EQ(members.begin()->first, before) << "the same session keeps the same znode";
  EXPECT_EQ(MetricValue(node.Metrics(), "webnode_zk_session_expirations_total"), 0.0);
}

TEST_F(WebnodeTest, SessionExpiryAfterSigstopReRegistersWithoutRestart) {
  Webnode node("node-s", zk_.connect(), {"--zk-session-timeout-ms", "2000"});
  ASSERT_TRUE(node.WaitReady());
  Observer obs(zk_.connect());
  ASSERT_EQ(obs.Members().size(), 1u);
  std::string before = obs.Members().begin()->first;
  node.process().Signal(SIGSTOP);
  ASSERT_TRUE(WaitFor([&] { return obs.Members().empty(); }, 15s)) << "frozen node's session never expired";
  node.process().Signal(SIGCONT);
  ASSERT_TRUE(WaitFor([&] { return obs.Members().size() == 1 && obs.Members().begin()->first != before; }, 20s));
  ASSERT_TRUE(node.WaitReady());
  EXPECT_EQ(obs.Members().size(), 1u);
  EXPECT_EQ(MetricValue(node.Metrics(), "webnode_zk_session_expirations_total"), 1.0);
  EXPECT_TRUE(node.process().running());
}

// With --zk-auth-file the node's znodes are read-only for everyone else, and
// the handle that replaces an expired session authenticates again: the node
// re-registers under a parent only its credential may create children in.
TEST_F(WebnodeTest, WithAuthFileOthersCannotTouchItsZnodeAndItReRegistersAfterExpiry) {
  TempDir dir;
  const std::string auth = dir.path() + "/zk-auth";
  std::ofstream(auth) << "webtier:Pw-9f3kq-unique\n";
  Webnode node("node-auth", zk_.connect(), {"--zk-auth-file", auth, "--zk-session-timeout-ms", "2000"});
  ASSERT_TRUE(node.WaitReady());
  Observer obs(zk_.connect());  // anonymous
  ASSERT_EQ(obs.Members().size(), 1u);
  const std::string before = obs.Members().begin()->first;
  const std::string znode = std::string(kPath) + "/" + before;
  EXPECT_FALSE(obs.session().Delete(znode).ok());
  EXPECT_FALSE(obs.session().Set(znode, "{}").ok());
  EXPECT_FALSE(obs.session().Create(std::string(kPath) + "/member_", "{}", zk::kEphemeral | zk::kSequence, nullptr).ok());

  node.process().Signal(SIGSTOP);
  ASSERT_TRUE(WaitFor([&] { return obs.Members().empty(); }, 15s)) << "frozen node's session never expired";
  node.process().Signal(SIGCONT);
  ASSERT_TRUE(WaitFor([&] { return obs.Members().size() == 1 && obs.Members().begin()->first != before; }, 20s))
      << node.process().Log();
  EXPECT_EQ(MetricValue(node.Metrics(), "webnode_zk_session_expirations_total"), 1.0);
  const std::string after = std::string(kPath) + "/" + obs.Members().begin()->first;
  EXPECT_FALSE(obs.session().Delete(after).ok());
  const std::string log = node.process().Log();
  EXPECT_EQ(log.find("Pw-9f3kq-unique"), std::string::npos) << "the password is never logged";
  EXPECT_EQ(log.find("membership is open"), std::string::npos) << log;
}

TEST_F(WebnodeTest, WithoutAuthFileItWarnsOnceThatMembershipIsOpen) {
  Webnode node("node-open", zk_.connect());
  ASSERT_TRUE(node.WaitReady());
  const std::string log = node.process().Log();
  const size_t first = log.find("membership is open to anyone");
  ASSERT_NE(first, std::string::npos) << log;
  EXPECT_EQ(log.find("membership is open to anyone", first + 1), std::string::npos) << log;
}

TEST(WebnodeFlags, UnreadableOrMalformedAuthFileRefusesToStart) {
  TempDir dir;
  const std::string malformed = dir.path() + "/malformed";
  std::ofstream(malformed) << "only-a-password-Xy7\n";
  for (const std::string& file : {dir.path() + "/missing", malformed}) {
    Process p(Process::Options{.argv = {BinaryPath("webnode"), "--zk-auth-file", file}, .env = {}, .log_path = {}, .cwd = {}});
    EXPECT_EQ(p.Wait(10s), 2) << file;
    const std::string log = p.Log();
    EXPECT_EQ(log.rfind("webnode: error: --zk-auth-file: ", 0), 0u) << log;
    EXPECT_EQ(log.find("Xy7"), std::string::npos) << log;
  }
}

TEST_F(WebnodeTest, ZnodeDeletedBySomeoneElseIsRecreated) {
  Webnode node("node-d", zk_.connect());
  ASSERT_TRUE(node.WaitReady());
  Observer obs(zk_.connect());
  std::string name = obs.Members().begin()->first;
  ASSERT_TRUE(obs.session().Delete(std::string(kPath) + "/" + name).ok());
  ASSERT_TRUE(WaitFor([&] { auto m = obs.Members(); return m.size() == 1 && m.begin()->first != name; }, 10s));
}

TEST(WebnodeNoZk, ZooKeeperAbsentAtStartIsNotFatal) {
  ZooKeeperServer zk;  // not started yet
  Webnode node("node-late", zk.connect());
  node.WaitHealthy();
  EXPECT_EQ(HttpGet(node.url("/")).status, 200);
  EXPECT_EQ(HttpGet(node.admin_url("/ready")).status, 503);
  EXPECT_EQ(MetricValue(node.Metrics(), "webnode_zk_registered"), 0.0);
  zk.Start();
  ASSERT_TRUE(node.WaitReady(30s));
  Observer obs(zk.connect());
  EXPECT_EQ(obs.Members().size(), 1u);
}

TEST(WebnodeNoZk, SigtermWithZooKeeperUnreachableStillExitsZero) {
  ZooKeeperServer zk;  // never started
  Webnode node("node-nozk", zk.connect(), {"--drain-ms", "100"});
  node.WaitHealthy();
  node.process().Signal(SIGTERM);
  EXPECT_EQ(node.process().Wait(5s), 0) << node.process().Log();
}

TEST(WebnodeFlags, BadFlagsExitTwoWithAClearError) {
  struct Case {
    std::vector<std::string> args;
    std::string expect;
  } cases[] = {
      {{"--listen", "nonsense"}, "--listen"},
      {{"--threads", "many"}, "--threads"},
      {{"--no-such-flag"}, "no-such-flag"},
      {{"--zk-path", "relative"}, "--zk-path"},
      {{"--drain-ms", "-4"}, "--drain-ms"},
      {{"--redis-sentinel", "s1:26379,,s2"}, "--redis-sentinel"},
  };
  for (auto& c : cases) {
    std::vector<std::string> argv = {BinaryPath("webnode")};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    Process p(Process::Options{.argv = argv, .env = {}, .log_path = {}, .cwd = {}});
    EXPECT_EQ(p.Wait(10s), 2) << c.args[0];
    EXPECT_NE(p.Log().find(c.expect), std::string::npos) << p.Log();
  }
  Process env_bad(Process::Options{.argv = {BinaryPath("webnode")}, .env = {{"WEBNODE_LISTEN", "garbage"}},
                                   .log_path = {}, .cwd = {}});
  EXPECT_EQ(env_bad.Wait(10s), 2) << "environment values are validated like flags";
  Process help(Process::Options{.argv = {BinaryPath("webnode"), "--help"}, .env = {}, .log_path = {}, .cwd = {}});
  EXPECT_EQ(help.Wait(10s), 0);
  EXPECT_NE(help.Log().find("--zk-session-timeout-ms"), std::string::npos);
  EXPECT_NE(help.Log().find("--redis-sentinel"), std::string::npos);
  EXPECT_NE(help.Log().find("--redis-master-name"), std::string::npos);
  EXPECT_NE(help.Log().find("--zk-auth-file"), std::string::npos);
  EXPECT_NE(help.Log().find("--zk-admin-acl"), std::string::npos);
  for (const char* flag : {"--redis-password-file", "--redis-sentinel-password-file", "--admin-token-file"})
    EXPECT_NE(help.Log().find(flag), std::string::npos) << flag;
}

// The secret files: an unreadable one, or one given with its flag (or the
// flag's environment variable), is refused with exit 2 and one error line
// naming the flag; the secret itself is never printed.
TEST(WebnodeFlags, SecretFilesThatCannotBeUsedExitTwoWithoutPrintingTheSecret) {
  TempDir dir;
  const std::string file = dir.path() + "/token";
  std::ofstream(file) << "file-secret-1234\n";
  struct Case {
    std::vector<std::string> args;
    std::vector<std::pair<std::string, std::string>> env;
    std::string expect;
  } cases[] = {
      {{"--redis-password-file", dir.path() + "/missing"}, {}, "--redis-password-file: cannot read"},
      {{"--redis-sentinel-password-file", dir.path()}, {}, "--redis-sentinel-password-file: cannot read"},
      {{"--admin-token-file", file, "--admin-token", "flag-secret-5678"}, {}, "--admin-token-file: given together"},
      {{"--redis-password-file", file}, {{"WEBNODE_REDIS_PASSWORD", "flag-secret-5678"}},
       "--redis-password-file: given together"},
  };
  for (auto& c : cases) {
    std::vector<std::string> argv = {BinaryPath("webnode")};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    Process p(Process::Options{.argv = argv, .env = c.env, .log_path = {}, .cwd = {}});
    EXPECT_EQ(p.Wait(10s), 2) << c.args[0];
    const std::string log = p.Log();
    EXPECT_NE(log.find(c.expect), std::string::npos) << log;
    EXPECT_EQ(log.find("error:"), log.rfind("error:")) << "one error line: " << log;
    EXPECT_EQ(log.find("file-secret-1234"), std::string::npos) << log;
    EXPECT_EQ(log.find("flag-secret-5678"), std::string::npos) << log;
  }
}

TEST(WebnodeFlags, EnvironmentConfiguresAndFlagWins) {
  ZooKeeperServer zk;
  zk.Start();
  Process p(Process::Options{
      .argv = {BinaryPath("webnode"), "--id", "from-flag"},
      .env = {{"WEBNODE_LISTEN", "127.0.0.1:0"}, {"WEBNODE_ADMIN_LISTEN", "127.0.0.1:0"}, {"WEBNODE_ZK", zk.connect()},
              {"WEBNODE_ID", "from-env"}, {"WEBNODE_REDIS", ""}, {"WEBNODE_NAME", "EnvName"}},
      .log_path = {}, .cwd = {}});
  const uint16_t port = WaitListeningPort(p, "http");
  std::string url = "http://127.0.0.1:" + std::to_string(port) + "/";
  ASSERT_TRUE(WaitFor([&] { return HttpGet(url, 1s).status == 200; }, 20s)) << p.Log();
  auto r = HttpGet(url);
  EXPECT_EQ(r.header("x-served-by"), "from-flag");
  EXPECT_NE(r.body.find("Hello from EnvName!"), std::string::npos);
}

// Sends `raw` on `fd` and reads one small response (until the closing brace
// of the JSON body of GET /), EOF or a 10 s silence (generous: the suites run
// two at a time on two cores beside JVMs). When no response came, what is
// returned says how the read ended, so a failure tells a slow node from a
// closed or reset connection.
std::string Exchange(int fd, const std::string& raw) {
  ::send(fd, raw.data(), raw.size(), MSG_NOSIGNAL);
  std::string got;
  char buf[4096];
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0 && got.empty()) return "(no response: the node closed the connection)";
    if (n < 0 && got.empty()) {
      const int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) return "(no response within 10 s)";
      return std::string("(no response: ") + std::strerror(err) + ")";
    }
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
    if (got.find("}") != std::string::npos) break;  // the JSON body of / ends the response
  }
  return got;
}

// True when the server closes its side within 2 s, after whatever it still
// had to send (read and dropped).
bool ServerCloses(int fd) {
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0) return true;
    if (n < 0) return false;  // the timeout: still open
  }
}

TEST_F(WebnodeTest, Http11IsPersistentByDefaultAndHttp10IsNot) {
  Webnode node("node-ka", zk_.connect());
  node.WaitHealthy();
  int fd = ConnectLoopback(node.port());
  ASSERT_GE(fd, 0);
  // No Connection header: HTTP/1.1 keeps the connection (Pistache 0.0.5 alone would close it).
  std::string first = Exchange(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_NE(first.find("HTTP/1.1 200"), std::string::npos) << first;
  EXPECT_NE(first.find("Connection: keep-alive"), std::string::npos) << first;
  std::string second = Exchange(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_NE(second.find("HTTP/1.1 200"), std::string::npos) << "second request on the same connection: " << second;
  // An explicit close is honoured: said, and done (RFC 9112 9.6: the server
  // closes after the answer; Pistache 0.0.5 alone leaves it open).
  std::string last = Exchange(fd, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_NE(last.find("Connection: close"), std::string::npos) << last;
  EXPECT_TRUE(ServerCloses(fd));
  ::close(fd);
  int fd10 = ConnectLoopback(node.port());
  std::string old = Exchange(fd10, "GET / HTTP/1.0\r\n\r\n");
  EXPECT_NE(old.find("200"), std::string::npos) << old;
  EXPECT_NE(old.find("Connection: close"), std::string::npos) << old;
  EXPECT_TRUE(ServerCloses(fd10));
  ::close(fd10);
  // The many connections closed by the node do not stop the next ones.
  for (int i = 0; i < 50; ++i) {
    int c = ConnectLoopback(node.port());
    ASSERT_GE(c, 0);
    std::string got = Exchange(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(got.rfind("HTTP/1.1 200", 0), 0u) << i << ": " << got;
    EXPECT_TRUE(ServerCloses(c)) << i;
    ::close(c);
  }
}

TEST_F(WebnodeTest, BadRequestsGetAClearStatusAndTheNodeKeepsServing) {
  Webnode node("node-bad", zk_.connect(), {"--max-request-bytes", "8192"});
  node.WaitHealthy();
  auto big = HttpRequest("POST", node.url("/upload"), {}, std::string(64 * 1024, 'x'));
  EXPECT_EQ(big.status, 413) << big.error;
  auto huge_header = HttpRequest("GET", node.url("/"), {"X-Big: " + std::string(16 * 1024, 'y')});
  EXPECT_TRUE(huge_header.status == 413 || huge_header.status == 431) << huge_header.status << " " << huge_header.error;
  EXPECT_EQ(HttpGet(node.url("/no/such/route")).status, 404);
  EXPECT_EQ(HttpGet(node.url("/")).status, 200);
  EXPECT_TRUE(node.process().running());
}

// RFC 9112 9.6: after refusing a request the node shuts only its write side
// and drops what else arrives, so the client's unread bytes never turn into a
// reset that destroys the answer. A client that sent 256 KiB after a refused
// head and reads only 200 ms later still gets the whole 400.
TEST_F(WebnodeTest, ARefusedRequestsAnswerSurvivesAClientThatReadsLate) {
  Webnode node("node-late", zk_.connect());
  node.WaitHealthy();
  const int fd = ConnectLoopback(node.port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd, "POST /api/primes/10 HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"));
  SendAll(fd, std::string(256 * 1024, 'x'));  // the node may stop reading: best effort
  std::this_thread::sleep_for(200ms);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string got;
  char buf[4096];
  ssize_t n = 0;
  while (got.find("}") == std::string::npos && (n = ::recv(fd, buf, sizeof buf, 0)) > 0) got.append(buf, static_cast<size_t>(n));
  const int err = n < 0 ? errno : 0;
  ::close(fd);
  EXPECT_EQ(got.rfind("HTTP/1.1 400", 0), 0u) << "read " << got.size() << " bytes, then "
                                              << (n == 0 ? "EOF" : err == EAGAIN ? "10 s of silence" : std::strerror(err))
                                              << ": " << got;
  EXPECT_NE(got.find("\"error\":"), std::string::npos) << got;
}

// With --access-log each answer is one line (component=access) naming its
// request id and trace id; at the debug level the cache decision is logged
// with them. A malformed traceparent gives no trace id; a control byte in a
// request id cannot forge a field.
TEST_F(WebnodeTest, AccessLineAndCacheDecisionNameTheRequestAndItsTrace) {
  RedisServer redis;
  redis.Start();
  Webnode node("node-log", zk_.connect(), {"--redis", redis.address(), "--access-log"}, "127.0.0.1",
               [](std::vector<std::string> argv) {
                 argv.insert(argv.begin(), {"/usr/bin/env", "WEBTIER_LOG_LEVEL=debug"});
                 return argv;
               });
  node.WaitHealthy();
  const std::string trace = "0af7651916cd43dd8448eb211c80319c";
  auto get = [&](const std::string& id, const std::string& traceparent) {
    std::vector<std::string> headers = {"Host: site.example", "X-Request-Id: " + id};
    if (!traceparent.empty()) headers.push_back("traceparent: " + traceparent);
    return HttpRequest("GET", node.url("/api/primes/77"), headers);
  };
  EXPECT_EQ(get("req-1", "00-" + trace + "-b7ad6b7169203331-01").header("x-cache"), "MISS");
  EXPECT_EQ(get("req-2", "00-" + trace + "-B7AD6B7169203331-01").header("x-cache"), "HIT");  // upper case: malformed
  EXPECT_EQ(get("req-3\x1b[2J", "").status, 200);
  std::string log;
  auto line = [&](const std::string& component, const std::string& id) {
    const size_t at = log.find("request_id=" + id);
    if (at == std::string::npos) return std::string();
    for (size_t start = log.rfind('\n', at) + 1, end = log.find('\n', at);;) {
      std::string l = log.substr(start, end - start);
      if (l.find("component=" + component + " ") != std::string::npos) return l;
      const size_t next = log.find("request_id=" + id, end);
      if (next == std::string::npos) return std::string();
      start = log.rfind('\n', next) + 1;
      end = log.find('\n', next);
    }
  };
  // A request's line is written after its answer has gone: wait for all of them.
  ASSERT_TRUE(WaitFor(
      [&] {
        log = node.process().Log();
        return !line("access", "req-1").empty() && !line("access", "req-2").empty() &&
               !line("access", "\"req-3").empty() && !line("cache", "req-1").empty();
      },
      5s))
      << log;
  const std::string first = line("access", "req-1");
  EXPECT_NE(first.find(" msg=request method=GET host=site.example path=/api/primes/77 status=200 "), std::string::npos)
      << first;
  EXPECT_NE(first.find(" cache=MISS "), std::string::npos) << first;
  EXPECT_NE(first.find(" trace_id=" + trace), std::string::npos) << first;
  const std::string second = line("access", "req-2");
  EXPECT_NE(second.find(" cache=HIT "), std::string::npos) << second;
  EXPECT_NE(second.find(" trace_id=\"\""), std::string::npos) << second;
  EXPECT_NE(line("access", "\"req-3").find("request_id=\"req-3\\x1b[2J\""), std::string::npos) << log;
  const std::string decision = line("cache", "req-1");
  EXPECT_NE(decision.find("msg=decision"), std::string::npos) << decision;
  EXPECT_NE(decision.find("cache_status=\"webtier; fwd="), std::string::npos) << decision;
  EXPECT_NE(decision.find(" trace_id=" + trace), std::string::npos) << decision;
}

// Pipelined requests are answered in the order they came (RFC 9112 9.3.2),
// although Pistache hands them to handlers at once and a quick answer is
// ready before a slow one.
TEST_F(WebnodeTest, PipelinedRequestsAreAnsweredInOrder) {
  Webnode node("node-pipe", zk_.connect());
  node.WaitHealthy();
  const int fd = ConnectLoopback(node.port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd, "GET /api/sleep/300 HTTP/1.1\r\nHost: x\r\n\r\n"
                          "GET /api/primes/10 HTTP/1.1\r\nHost: x\r\n\r\n"
                          "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string got;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) got.append(buf, static_cast<size_t>(n));
  ::close(fd);
  const size_t sleep = got.find("\"slept_ms\"");
  const size_t primes = got.find("\"primes\"");
  const size_t health = got.find("ok\n");
  ASSERT_NE(sleep, std::string::npos) << got;
  ASSERT_NE(primes, std::string::npos) << got;
  ASSERT_NE(health, std::string::npos) << got;
  EXPECT_LT(sleep, primes) << got;
  EXPECT_LT(primes, health) << got;

  // After a body of known length, the next request is read where it ends.
  // After a chunked one the node closes instead: the client retries.
  const std::vector<std::pair<std::string, int>> cases = {
      {"POST /api/primes/10 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 2},
      {"POST /api/primes/10 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 1}};
  for (const auto& [first, answers] : cases) {
    const int c = ConnectLoopback(node.port());
    ASSERT_GE(c, 0);
    ASSERT_TRUE(SendAll(c, first + "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string all;
    for (ssize_t n; (n = ::recv(c, buf, sizeof buf, 0)) > 0;) all.append(buf, static_cast<size_t>(n));
    ::close(c);
    int seen = 0;
    for (size_t at = all.find("HTTP/1.1 "); at != std::string::npos; at = all.find("HTTP/1.1 ", at + 1)) ++seen;
    EXPECT_EQ(seen, answers) << first << "\n" << all;
    if (answers == 2) {
      EXPECT_NE(all.find("ok\n"), std::string::npos) << all;
    }
    if (answers == 1) {
      EXPECT_NE(all.find("Connection: close"), std::string::npos) << all;
    }
  }
}

// A client that pipelines requests and reads none of the answers: Pistache
// reads on, so the answers would pile up in the node. Past the bound the
// connection is shut (one log line, webnode_http_refused_total{reason=
// "unread_answers"}) and every other client is served as before.
TEST_F(WebnodeTest, AClientThatPipelinesAndNeverReadsIsCutOff) {
  Webnode node("node-unread", zk_.connect());
  node.WaitHealthy();
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  const int small = 4096;  // the client takes little before its window closes
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(node.port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  std::string burst;
  for (int i = 0; i < 500; ++i) burst += "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
  bool shut = false;
  for (int round = 0; round < 200 && !shut; ++round) {
    if (!SendAll(fd, burst)) break;  // the node shut the connection
    shut = MetricValue(node.Metrics(), "webnode_http_refused_total", {{"reason", "unread_answers"}}).value_or(0) >= 1;
  }
  EXPECT_TRUE(WaitFor(
      [&] {
        return MetricValue(node.Metrics(), "webnode_http_refused_total", {{"reason", "unread_answers"}}).value_or(0) ==
               1;
      },
      10s));
  ::close(fd);
  EXPECT_NE(node.process().Log().find("client pipelines requests and reads no answer"), std::string::npos)
      << node.process().Log().substr(0, 6000);
  EXPECT_EQ(HttpGet(node.url("/api/primes/10")).status, 200);
  EXPECT_TRUE(node.process().running());
}

// Answers written by the cache's worker threads reach the connection their
// request came on, and only it, while connections come and go around them:
// the kernel hands a closed connection's descriptor number to the next one
// at once, and each client here closes as soon as it has its answer. Every
// client must read its own answer (its own n), never another's, never an
// EOF with nothing before it.
TEST_F(WebnodeTest, EveryAnswerReachesItsOwnConnectionWhileDescriptorsAreReused) {
  RedisServer redis;
  redis.Start();
  Webnode node("node-own", zk_.connect(), {"--redis", redis.address()});
  node.WaitHealthy();
  constexpr int kClients = 4, kRequests = 300;
  std::vector<std::string> errors[kClients];
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      for (int i = 0; i < kRequests && errors[c].size() < 5; ++i) {
        const int n = 1000 + c * 10000 + i;  // a miss each: answered from a worker thread
        const int fd = ConnectLoopback(node.port());
        if (fd < 0) {
          errors[c].push_back("connect failed");
          continue;
        }
        const std::string got =
            Exchange(fd, "GET /api/primes/" + std::to_string(n) + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        ::close(fd);
        if (got.rfind("HTTP/1.1 200", 0) != 0 || got.find("\"n\":" + std::to_string(n) + ",") == std::string::npos) {
          errors[c].push_back("n=" + std::to_string(n) + ": " + got.substr(0, 300));
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  for (int c = 0; c < kClients; ++c) EXPECT_TRUE(errors[c].empty()) << "client " << c << ": " << errors[c].front();
}

// Pistache 0.0.5 parses the request headers it knows before any handler runs
// and answers 500 to a value its parser rejects. RFC 9111 5.2.3: unknown
// Cache-Control directives are ignored; no request header may turn a request
// into an error (raw_request_headers.h). Sent raw, each on its own connection.
TEST_F(WebnodeTest, NoRequestHeaderValueCausesAServerError) {
  RedisServer redis;
  redis.Start();
  Webnode node("node-hdr", zk_.connect(), {"--redis", redis.address()});
  node.WaitHealthy();
  const std::vector<std::string> odd = {
      "Cache-Control: nothing-to-see-here", "Cache-Control: stale-if-error=60", "Cache-Control: max-age=\"x\", ,,",
      "Cache-Control: no-cache=\"Set-Cookie", "Date: yesterday", "Date: Tue, 99 Foo 1994 99:99:99 GMT",
      "Expires: 0", "Accept: ;;;q=", "Accept-Encoding: ;q=x", "X-Host: ::::", "User-Agent:", "Expect: 100-continue-ish",
      "Location: ::", "If-Modified-Since: garbage", "If-None-Match: W/", "Connection: TE, foo",
      "Content-Type: /", "Allow: ???", "Pragma: no-cache", "Authorization: Nope"};
  for (const auto& header : odd) {
    for (const std::string path : {"/", "/api/primes/10"}) {
      int fd = ConnectLoopback(node.port());
      ASSERT_GE(fd, 0);
      std::string got = Exchange(fd, "GET " + path + " HTTP/1.1\r\nHost: x\r\n" + header + "\r\nConnection: close\r\n\r\n");
      ::close(fd);
      EXPECT_EQ(got.rfind("HTTP/1.1 200", 0), 0u) << header << " on " << path << ": " << got;
    }
  }
  // A second Host, or an invalid one, is the client's error too (RFC 9112 3.2).
  for (const std::string host : {"Host: x\r\nHost: ::::", "Host: ::::", "Host: a/b"}) {
    int fd = ConnectLoopback(node.port());
    std::string got = Exchange(fd, "GET / HTTP/1.1\r\n" + host + "\r\nConnection: close\r\n\r\n");
    ::close(fd);
    EXPECT_EQ(got.rfind("HTTP/1.1 400", 0), 0u) << host << ": " << got;
  }
  // A bad Content-Length is the client's error, not the server's.
  for (const std::string cl : {"abc", "99999999999999999999999", "-1"}) {
    int fd = ConnectLoopback(node.port());
    std::string got = Exchange(fd, "POST /api/primes/10 HTTP/1.1\r\nHost: x\r\nContent-Length: " + cl +
                                       "\r\nConnection: close\r\n\r\n");
    ::close(fd);
    EXPECT_EQ(got.rfind("HTTP/1.1 400", 0), 0u) << cl << ": " << got;
  }
  // Pistache parses Cookie while it reads the head and throws on a pair
  // without '=': a 400 with the reason, not its 500; a method it does not know
  // is 501 (RFC 9110 15.6.2). Each is counted under route="unparsed".
  const std::vector<std::pair<std::string, std::string>> refused = {
      {"GET / HTTP/1.1\r\nHost: x\r\nCookie: foo\r\n", "HTTP/1.1 400"},
      {"GET / HTTP/1.1\r\nHost: x\r\nCookie: a=b; c\r\n", "HTTP/1.1 400"},
      {"BREW / HTTP/1.1\r\nHost: x\r\n", "HTTP/1.1 501"}};
  for (const auto& [head, status] : refused) {
    int fd = ConnectLoopback(node.port());
    std::string got = Exchange(fd, head + "Connection: close\r\n\r\n");
    ::close(fd);
    EXPECT_EQ(got.rfind(status, 0), 0u) << head << ": " << got;
    EXPECT_NE(got.find("\"error\":"), std::string::npos) << got;
  }
  // Where a refused request ends is unknown, so its connection ends with it,
  // even on keep-alive: bytes after it are never read as another request.
  {
    int fd = ConnectLoopback(node.port());
    std::string got = Exchange(fd, "GET / HTTP/1.1\r\nHost: x\r\nCookie: foo\r\n\r\n");
    EXPECT_EQ(got.rfind("HTTP/1.1 400", 0), 0u) << got;
    EXPECT_NE(got.find("Connection: close\r\n"), std::string::npos) << got;
    const std::string next = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    ::send(fd, next.data(), next.size(), MSG_NOSIGNAL);
    std::string after;
    char buf[4096];
    timeval tv{2, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ssize_t n;
    while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) after.append(buf, static_cast<size_t>(n));
    EXPECT_EQ(n, 0) << "the node closes its side";
    EXPECT_EQ(after, "") << "nothing answers the bytes after a refused request";
    ::close(fd);
  }
  const std::string metrics = node.Metrics();
  EXPECT_EQ(MetricValue(metrics, "webnode_http_requests_total", {{"route", "unparsed"}, {"code", "400"}, {"method", "unknown"}}),
            std::optional<double>(7))
      << "3 bad Content-Length values, 3 bad Cookie lines and a second Host line";
  EXPECT_TRUE(node.process().running());
}

}  // namespace
}  // namespace webtier
