// In-process tests of the proxy engine: a ProxyServer fed by a Pool directly
// (no ZooKeeper) in front of in-process EchoBackends. No child processes, so
// these run under ASan+UBSan in CI.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <thread>

#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "echo_backend.h"
#include "proxy_fixture.h"
#include "webtier/balancer/upstream/pool.h"
#include "webtier/balancer/telemetry/proxy_metrics.h"
#include "webtier/balancer/engine/proxy_server.h"
#include "webtier/monitoring/metrics.h"
#include "webtier/testing/harness.h"

namespace webtier::balancer {
namespace {

using namespace std::chrono_literals;
using testing::ConnectLoopback;
using testing::EchoBackend;
using testing::HttpRequest;
using testing::MetricValue;
using testing::RawExchange;
using testing::SendAll;
namespace http = boost::beast::http;

using ProxyTest = ProxyFixture;

TEST_F(ProxyTest, ForwardsWithForwardingHeadersAndStripsHopByHop) {
  EchoBackend a("a");
  Add("a", a.port());
  StartProxy();
  auto r = HttpRequest("GET", Url("/hello?x=1"), {"Connection: X-Secret", "X-Secret: s", "Proxy-Authorization: p"});
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.header("x-served-by"), "a");
  auto echo = nlohmann::json::parse(r.body);
  EXPECT_EQ(echo["target"], "/hello?x=1");
  EXPECT_EQ(echo["headers"]["x-forwarded-for"], "127.0.0.1");
  EXPECT_EQ(echo["headers"]["x-forwarded-proto"], "http");
  EXPECT_EQ(echo["headers"]["x-request-id"].get<std::string>().size(), 32u);
  EXPECT_FALSE(echo["headers"].contains("x-secret"));
  EXPECT_FALSE(echo["headers"].contains("proxy-authorization"));
  EXPECT_EQ(r.header("x-request-id"), echo["headers"]["x-request-id"]);  // echoed to the client

  r = HttpRequest("GET", Url("/"), {"X-Request-Id: mine", "X-Forwarded-For: 10.1.2.3"});
  echo = nlohmann::json::parse(r.body);
  EXPECT_EQ(echo["headers"]["x-request-id"], "mine");
  EXPECT_EQ(echo["headers"]["x-forwarded-for"], "10.1.2.3, 127.0.0.1");
  // Counted after the response is written: wait rather than race.
  EXPECT_TRUE(testing::WaitFor([&] { return Metric("balancer_requests_total", {{"code", "200"}}) == 2; }, 5s));
  EXPECT_EQ(Metric("balancer_upstream_requests_total", {{"member", "a"}, {"outcome", "ok"}}), 2);
}

TEST_F(ProxyTest, ChunkedBothWaysAndCloseDelimitedResponses) {
  EchoBackend a("a");
  Add("a", a.port());
  StartProxy();
  auto raw = RawExchange(proxy_->port(),
                         "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                         "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
                         5s);
  EXPECT_NE(raw.find("HTTP/1.1 200"), std::string::npos) << raw;
  EXPECT_NE(raw.find("\"body_size\":11"), std::string::npos) << raw;

  auto r = HttpRequest("GET", Url("/chunked"));
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body, "alpha-beta-gamma");
  r = HttpRequest("GET", Url("/close"));
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body, "close-delimited body");
  r = HttpRequest("GET", Url("/big/1000000"));
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body.size(), 1000000u);
  r = HttpRequest("HEAD", Url("/big/1000"));
  EXPECT_EQ(r.status, 200) << r.error;

  // The member's chunked body, re-chunked for HTTP/1.1 on the wire.
  raw = RawExchange(proxy_->port(), "GET /chunked HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 5s);
  EXPECT_NE(raw.find("Transfer-Encoding: chunked\r\n"), std::string::npos) << raw;
  EXPECT_NE(raw.find("\r\n0\r\n\r\n"), std::string::npos) << raw;
  // HTTP/1.0 knows no chunking: the plain body, ended by closing.
  raw = RawExchange(proxy_->port(), "GET /chunked HTTP/1.0\r\n\r\n", 5s);
  EXPECT_TRUE(raw.starts_with("HTTP/1.0 200")) << raw;
  EXPECT_EQ(raw.find("Transfer-Encoding"), std::string::npos) << raw;
  EXPECT_EQ(raw.find("Content-Length"), std::string::npos) << raw;
  EXPECT_TRUE(raw.ends_with("\r\n\r\nalpha-beta-gamma")) << raw;
}

TEST_F(ProxyTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  EchoBackend a("a");
  Add("a", a.port());
  StartProxy();
  auto raw = RawExchange(proxy_->port(),
                         "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n"
                         "GET /3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                         5s);
  size_t count = 0;
  for (size_t p = raw.find("HTTP/1.1 200"); p != std::string::npos; p = raw.find("HTTP/1.1 200", p + 1)) ++count;
  EXPECT_EQ(count, 3u) << raw;
}

TEST_F(ProxyTest, APortInUseIsAnErrorNotASharedListener) {
  StartProxy();
  Config other = config_;
  other.listen.port = proxy_->port();
  ProxyServer second(other, pool_, metrics_);
  Status s = second.Start();
  EXPECT_EQ(s.code(), ErrorCode::kUnavailable) << s.ToString();
}

TEST_F(ProxyTest, EmptyPoolAnswers503Json) {
  StartProxy();
  auto r = HttpRequest("GET", Url("/"));
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(nlohmann::json::parse(r.body)["error"], "no members");
}

TEST_F(ProxyTest, RefusingMemberIsEjectedAndRequestsRetriedElsewhere) {
  EchoBackend a("a");
  const uint16_t dead = testing::FreePort();
  Add("a", a.port());
  Add("dead", dead);
  StartProxy();
  for (int i = 0; i < 20; ++i) {
    auto r = HttpRequest("GET", Url("/"));
    ASSERT_EQ(r.status, 200) << r.error;
    EXPECT_EQ(r.header("x-served-by"), "a");
  }
  // POST is not idempotent, but a refused connect sent nothing: also retried.
  EXPECT_EQ(HttpRequest("POST", Url("/"), {}, "body").status, 200);
  EXPECT_GE(Metric("balancer_ejections_total"), 1);
  EXPECT_GE(Metric("balancer_retries_total"), 1);
  EXPECT_GE(Metric("balancer_upstream_requests_total", {{"member", "dead"}, {"outcome", "connect_failure"}}), 1);
}

TEST_F(ProxyTest, AllMembersDownGives502) {
  Add("dead1", testing::FreePort());
  Add("dead2", testing::FreePort());
  StartProxy();
  auto r = HttpRequest("GET", Url("/"));
  EXPECT_EQ(r.status, 502);
  EXPECT_NE(r.body.find("error"), std::string::npos);
  // Panic mode: every member ejected, still tried (and still 502, not 503).
  EXPECT_EQ(HttpRequest("GET", Url("/")).status, 502);
}

TEST_F(ProxyTest, SlowUpstreamGives504) {
  EchoBackend a("a");
  Add("a", a.port());
  config_.request_timeout_ms = 200;
  StartProxy();
  auto r = HttpRequest("GET", Url("/sleep/3000"));
  EXPECT_EQ(r.status, 504);
  EXPECT_EQ(Metric("balancer_upstream_requests_total", {{"member", "a"}, {"outcome", "timeout"}}), 1);
  EXPECT_EQ(HttpRequest("GET", Url("/")).status, 200);
}

TEST_F(ProxyTest, TryTimeoutMovesIdempotentRequestsOffAStalledMember) {
  EchoBackend a("a");
  RawMember stalled;
  Add("a", a.port());
  Add("stalled", stalled.port());
  config_.try_timeout_ms = 200;
  config_.request_timeout_ms = 5000;
  StartProxy();
  // Round robin sends one of the first two requests to the stalled member;
  // after 200 ms it is ejected and the request answered by `a`.
  for (int i = 0; i < 6; ++i) {
    auto r = HttpRequest("GET", Url("/"));
    ASSERT_EQ(r.status, 200) << r.error;
    EXPECT_EQ(r.header("x-served-by"), "a");
  }
  EXPECT_EQ(Metric("balancer_upstream_requests_total", {{"member", "stalled"}, {"outcome", "timeout"}}), 1);
  EXPECT_EQ(Metric("balancer_ejections_total"), 1);
  EXPECT_EQ(Metric("balancer_retries_total"), 1);
}

TEST_F(ProxyTest, TryTimeoutNeverRetriesAPostOrTheLastMember) {
  RawMember stalled;
  Add("stalled", stalled.port());
  config_.try_timeout_ms = 100;
  config_.request_timeout_ms = 700;
  StartProxy();
  // Only one member: nobody else to ask, so it gets the whole request timeout.
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(HttpRequest("GET", Url("/")).status, 504);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 650ms);
  EXPECT_EQ(Metric("balancer_ejections_total"), 0);

  EchoBackend a("a");
  Add("a", a.port());
  // A POST that meets the stalled member waits the whole request timeout
  // too and is not retried: the member may still act on it.
  int posts_504 = 0;
  for (int i = 0; i < 2; ++i) {
    const int status = HttpRequest("POST", Url("/"), {}, "body").status;
    EXPECT_TRUE(status == 200 || status == 504) << status;
    posts_504 += status == 504;
  }
  EXPECT_EQ(posts_504, 1);  // round robin over two members
  EXPECT_EQ(Metric("balancer_retries_total"), 0);
  EXPECT_EQ(Metric("balancer_upstream_requests_total", {{"member", "stalled"}, {"outcome", "timeout"}}), 2);
}

// Reads from `fd` into `into` until `enough(into)` or the socket's receive
// timeout; false on timeout or close.
bool ReadUntil(int fd, std::string& into, const std::function<bool(const std::string&)>& enough) {
  char buf[65536];
  while (!enough(into)) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return false;
    into.append(buf, static_cast<size_t>(n));
  }
  return true;
}

size_t BodyBytes(const std::string& raw) {
  const size_t end = raw.find("\r\n\r\n");
  return end == std::string::npos ? 0 : raw.size() - end - 4;
}

// A large body goes to the member as it arrives: the member has the head and
// the first part while the client still holds the rest back (if the balancer
// read bodies whole, the member would see nothing and the wait would fail).
TEST_F(ProxyTest, LargeBodiesAreStreamedNotReadWhole) {
  RawMember m;
  Add("m", m.port());
  StartProxy();
  for (const bool chunked : {false, true}) {
    SCOPED_TRACE(chunked ? "chunked" : "content-length");
    const std::string part(100000, 'z');
    const int client = ConnectLoopback(proxy_->port(), 10s);
    ASSERT_GE(client, 0);
    ASSERT_TRUE(SendAll(client, std::string("PUT /up HTTP/1.1\r\nHost: x\r\n") +
                        (chunked ? "Transfer-Encoding: chunked\r\n\r\n" : "Content-Length: 300000\r\n\r\n")));
    auto send_part = [&] { EXPECT_TRUE(SendAll(client, chunked ? "186a0\r\n" + part + "\r\n" : part)); };  // 0x186a0 = 100000
    send_part();
    const int up = m.Accept(10s);
    ASSERT_GE(up, 0);
    std::string seen;
    ASSERT_TRUE(ReadUntil(up, seen, [](const std::string& r) { return BodyBytes(r) >= 100000; }))
        << "the member got " << BodyBytes(seen) << " body bytes before the client sent the rest";
    EXPECT_NE(seen.find(chunked ? "Transfer-Encoding: chunked\r\n" : "Content-Length: 300000\r\n"), std::string::npos)
        << seen.substr(0, seen.find("\r\n\r\n"));
    send_part();
    send_part();
    if (chunked) {
      EXPECT_TRUE(SendAll(client, "0\r\n\r\n"));
    }
    // The whole body, through a parser: framing intact, every byte there.
    http::request_parser<http::string_body> parser;
    parser.body_limit(1 << 20);
    parser.eager(true);
    std::string rest = seen;
    size_t fed = 0;
    ASSERT_TRUE(ReadUntil(up, rest, [&](const std::string& r) {
      boost::beast::error_code ec;
      while (fed < r.size() && !parser.is_done()) {
        const size_t n = parser.put(boost::asio::buffer(r.data() + fed, r.size() - fed), ec);
        fed += n;
        if (ec == http::error::need_more) break;
        if (ec) {
          ADD_FAILURE() << ec.message() << " at byte " << fed;
          return true;
        }
        if (n == 0) break;
      }
      return parser.is_done();
    }));
    ASSERT_TRUE(parser.is_done());
    EXPECT_EQ(parser.get().body(), part + part + part);
    EXPECT_TRUE(SendAll(up, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
    std::string reply;
    ASSERT_TRUE(ReadUntil(client, reply, [](const std::string& r) { return r.ends_with("ok"); })) << reply;
    EXPECT_TRUE(reply.starts_with("HTTP/1.1 200")) << reply;
    ::close(client);
    ::close(up);
  }
}

TEST_F(ProxyTest, StreamedBodiesReachTheMemberWholeAndKeepTheirLimit) {
  EchoBackend a("a");
  Add("a", a.port());
  config_.max_body_bytes = 2'000'000;
  StartProxy();
  const std::string big(1'500'000, 'q');
  auto r = HttpRequest("POST", Url("/up"), {}, big);
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(nlohmann::json::parse(r.body)["body_size"], big.size());

  std::string chunked = "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
  for (int i = 0; i < 15; ++i) chunked += "186a0\r\n" + std::string(100000, 'c') + "\r\n";
  auto raw = RawExchange(proxy_->port(), chunked + "0\r\n\r\n", 10s);
  EXPECT_NE(raw.find("HTTP/1.1 200"), std::string::npos) << raw.substr(0, 200);
  EXPECT_NE(raw.find("\"body_size\":1500000"), std::string::npos) << raw.substr(0, 400);

  // Over the limit in the middle of the stream: 413, the member's request is
  // abandoned, and the next request is served.
  for (int i = 0; i < 10; ++i) chunked += "186a0\r\n" + std::string(100000, 'c') + "\r\n";
  raw = RawExchange(proxy_->port(), chunked + "0\r\n\r\n", 10s);
  EXPECT_TRUE(raw.starts_with("HTTP/1.1 413")) << raw.substr(0, 200);
  EXPECT_EQ(HttpRequest("GET", Url("/")).status, 200);
  EXPECT_EQ(Metric("balancer_rejected_requests_total", {{"reason", "body_too_large"}}), 1);
}

TEST_F(ProxyTest, BadRequestsGetTheirStatusAndAreCounted) {
  EchoBackend a("a");
  Add("a", a.port());
  config_.max_header_bytes = 1024;
  config_.max_body_bytes = 1000;
  config_.header_timeout_ms = 300;
  StartProxy();
  const uint16_t port = proxy_->port();
  auto status_of = [](const std::string& raw) { return raw.substr(0, 12); };

  EXPECT_EQ(status_of(RawExchange(port, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 3s)),
            "HTTP/1.1 400");
  EXPECT_EQ(status_of(RawExchange(port, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 3s)),
            "HTTP/1.1 400");
  EXPECT_EQ(status_of(RawExchange(port, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 3s)),
            "HTTP/1.1 400");
  EXPECT_EQ(status_of(RawExchange(port, "GARBAGE\r\n\r\n", 3s)), "HTTP/1.1 400");
  EXPECT_EQ(status_of(RawExchange(port, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(4000, 'a') + "\r\n\r\n", 3s)),
            "HTTP/1.1 431");
  EXPECT_EQ(status_of(RawExchange(port, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + std::string(5000, 'b'), 3s)),
            "HTTP/1.1 413");
  EXPECT_EQ(status_of(RawExchange(port, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n" +
                                            std::string(4096, 'c') + "\r\n0\r\n\r\n", 3s)),
            "HTTP/1.1 413");
  // Slowloris: half a header, then silence.
  EXPECT_EQ(status_of(RawExchange(port, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: 1", 5s)), "HTTP/1.1 408");

  EXPECT_EQ(Metric("balancer_rejected_requests_total", {{"reason", "smuggling"}}), 3);
  EXPECT_EQ(Metric("balancer_rejected_requests_total", {{"reason", "header_too_large"}}), 1);
  EXPECT_EQ(Metric("balancer_rejected_requests_total", {{"reason", "body_too_large"}}), 2);
  EXPECT_EQ(Metric("balancer_rejected_requests_total", {{"reason", "header_timeout"}}), 1);
  EXPECT_EQ(Metric("balancer_requests_total", {{"code", "400"}}), 4);
  EXPECT_EQ(HttpRequest("GET", Url("/")).status, 200);  // still serving
}

TEST_F(ProxyTest, ConnectionsOverTheCapAreClosedAndCounted) {
  EchoBackend a("a");
  Add("a", a.port());
  config_.max_connections = 2;
  StartProxy();
  // Two idle connections hold the cap (they only send after a pause).
  std::thread h1([&] { RawExchange(proxy_->port(), "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 5s, 0, 1500ms); });
  std::thread h2([&] { RawExchange(proxy_->port(), "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 5s, 0, 1500ms); });
  ASSERT_TRUE(testing::WaitFor([&] { return proxy_->open_connections() == 2; }, 5s));
  EXPECT_EQ(HttpRequest("GET", Url("/"), {}, "", 2s).status, 0);
  EXPECT_GE(Metric("balancer_rejected_connections_total"), 1);
  h1.join();
  h2.join();
  ASSERT_TRUE(testing::WaitFor([&] { return proxy_->open_connections() == 0; }, 5s));
  EXPECT_EQ(HttpRequest("GET", Url("/")).status, 200);
}

TEST_F(ProxyTest, RemovedMemberGetsNoNewRequests) {
  EchoBackend a("a"), b("b");
  Add("a", a.port());
  Add("b", b.port());
  StartProxy();
  for (int i = 0; i < 4; ++i) ASSERT_EQ(HttpRequest("GET", Url("/")).status, 200);
  pool_.OnMembershipUpdate({}, {"member_a"});
  for (int i = 0; i < 10; ++i) EXPECT_EQ(HttpRequest("GET", Url("/")).header("x-served-by"), "b");
}

TEST_F(ProxyTest, ShutdownFinishesRequestsInFlight) {
  EchoBackend a("a");
  Add("a", a.port());
  StartProxy();
  std::atomic<int> status{0};
  std::thread client([&] { status = HttpRequest("GET", Url("/sleep/500")).status; });
  ASSERT_TRUE(testing::WaitFor([&] { return Metric("balancer_client_connections") >= 1; }, 5s));
  // The request is on its way to the member once the upstream counter moves or soon after; wait for the attempt.
  ASSERT_TRUE(testing::WaitFor([&] { return pool_.Snapshot()->members[0]->in_flight.load() == 1; }, 5s));
  proxy_->Shutdown(5s);
  client.join();
  EXPECT_EQ(status.load(), 200);
  EXPECT_NE(HttpRequest("GET", Url("/"), {}, "", 1s).status, 200);  // no longer accepting
}

}  // namespace
}  // namespace webtier::balancer
