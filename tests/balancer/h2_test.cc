// In-process tests of HTTP/2 at the balancer: a ProxyServer fed by a Pool
// directly, in front of in-process EchoBackends and hand-driven members,
// with the harness's HTTP/2 client (libnghttp2) over h2c and TLS. The
// protocol's own rules are checked frame by frame by tests/h2/conformance.py;
// these check what the balancer does with the streams: the same exchange as
// HTTP/1.1, bodies both ways, members failing under one stream, resets,
// floods, drains and reloads.
#include <gtest/gtest.h>

#include <nghttp2/nghttp2.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "echo_backend.h"
#include "engine/tunnel.h"
#include "proxy_fixture.h"
#include "webtier/balancer/tls/tls_context.h"
#include "webtier/testing/h2_client.h"
#include "webtier/testing/harness.h"
#include "webtier/testing/tls.h"

namespace webtier::balancer {
namespace {

using namespace std::chrono_literals;
using testing::EchoBackend;
using testing::H2Client;
using testing::WaitFor;
using json = nlohmann::json;

class H2Test : public ProxyFixture {
 protected:
  // Starts the proxy with TLS too (h2 in ALPN unless config_.h2 is off).
  void StartWithTls(int threads = 2) {
    files_ = testing::WriteSelfSignedCert(dir_.path(), "server", "one.test");
    tls_ = std::make_unique<TlsContext>(files_.cert, files_.key, config_.h2);
    ASSERT_TRUE(tls_->Load().ok());
    config_.listen = {"127.0.0.1", 0};
    config_.tls_listen = net::HostPort{"127.0.0.1", 0};
    config_.threads = threads;
    proxy_ = std::make_unique<ProxyServer>(config_, pool_, metrics_, tls_.get());
    ASSERT_TRUE(proxy_->Start().ok());
  }
  // A hand-driven member, the only one, behind a proxy with one worker.
  RawMember& StartWithRawMember() {
    Add("raw", raw_.port());
    StartProxy(1);
    return raw_;
  }
  void TearDown() override { proxy_.reset(); }  // before the TLS context it reads at accept

  testing::TempDir dir_{"h2-test"};
  testing::TlsFiles files_;
  std::unique_ptr<TlsContext> tls_;
  RawMember raw_;
};

TEST_F(H2Test, RequestsGoThroughTheSameExchangeAsHttp11) {
  EchoBackend a("a");
  Add("a", a.port());
  StartProxy();
  H2Client c(proxy_->port());
  ASSERT_TRUE(c.ok()) << c.error();
  auto r = c.Request("GET", "/hello?x=1",
                     {{"cookie", "a=1"}, {"cookie", "b=2"}, {"x-forwarded-proto", "https"}, {"user-agent", "t"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-served-by"), "a");
  const json echo = json::parse(r.body);
  EXPECT_EQ(echo["target"], "/hello?x=1");
  EXPECT_EQ(echo["headers"]["host"], "127.0.0.1:" + std::to_string(proxy_->port()));
  EXPECT_EQ(echo["headers"]["cookie"], "a=1; b=2");  // crumbs joined (RFC 9113 8.2.3)
  EXPECT_EQ(echo["headers"]["x-forwarded-proto"], "http");  // the client's own claim replaced
  EXPECT_EQ(echo["headers"]["x-forwarded-for"], "127.0.0.1");
  EXPECT_EQ(r.header("x-request-id"), echo["headers"]["x-request-id"]);
  // Connection-specific fields never reach the client (the member sent Connection: keep-alive).
  EXPECT_EQ(r.header("connection"), "");
  EXPECT_EQ(r.header("keep-alive"), "");

  // The same refusals as HTTP/1.1.
  EXPECT_EQ(c.Request("GET", "/admin/purge").status, 404);
  EXPECT_EQ(c.Request("GET", "/x", {{"host", "other.test"}}).status, 400);  // Host differs from :authority
  EXPECT_EQ(c.Request("POST", "/x", {{"content-length", std::to_string(config_.max_body_bytes + 1)}}, "x").status,
            413);
  EXPECT_EQ(c.Request("GET", "/x", {{"x-big", std::string(20000, 'b')}}).status, 431);
  EXPECT_EQ(Metric("balancer_rejected_requests_total", {{"reason", "admin_path"}}), 1);
  EXPECT_EQ(Metric("balancer_requests_total", {{"code", "200"}, {"protocol", "h2"}}), 1);
  // A connection-specific field makes the request malformed: the stream is reset.
  const auto bad = c.Request("GET", "/x", {{"connection", "close"}});
  EXPECT_EQ(bad.status, 0);
  EXPECT_EQ(bad.reset, static_cast<uint32_t>(NGHTTP2_PROTOCOL_ERROR));
  // ... and the connection goes on.
  EXPECT_EQ(c.Request("GET", "/after").status, 200);
}

// An answer that is whole before its request (a 413 for a declared length
// over --max-body-bytes) is followed by RST_STREAM(NO_ERROR): the client
// keeps the answer, stops sending a body nobody reads, and the stream's
// slot is free at once (RFC 9113 8.1).
TEST_F(H2Test, AnAnswerWholeBeforeItsRequestAsksTheClientToStopSending) {
  EchoBackend a("a");
  Add("a", a.port());
  StartProxy(1);
  H2Client c(proxy_->port());
  ASSERT_TRUE(c.ok()) << c.error();
  const int32_t id = c.Open("POST", "/upload", {{"content-length", std::to_string(config_.max_body_bytes + 1)}});
  ASSERT_GT(id, 0);
  c.SendData(id, std::string(1000, 'b'));
  ASSERT_TRUE(c.PumpUntil([&] { return c.response(id).closed; }, 5s));
  EXPECT_EQ(c.response(id).status, 413);
  EXPECT_EQ(c.response(id).reset, static_cast<uint32_t>(NGHTTP2_NO_ERROR));
  EXPECT_FALSE(c.response(id).body.empty());
  // The connection serves on, and an answer after its request ends is not reset.
  const auto r = c.Request("POST", "/after", {}, std::string(1000, 'p'));
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.closed);
  EXPECT_EQ(r.reset, 0u);
  EXPECT_FALSE(c.disconnected());
}

TEST_F(H2Test, LargeBodiesStreamBothWays) {
  EchoBackend a("a");
  Add("a", a.port());
  StartProxy(1);
  H2Client c(proxy_->port());
  ASSERT_TRUE(c.ok()) << c.error();
  // 4 MiB answer: more than every window and buffer on the way.
  auto r = c.Request("GET", "/big/4194304");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body.size(), 4194304u);
  EXPECT_EQ(r.header("content-length"), "4194304");
  // A chunked answer arrives in DATA frames, without the chunk framing.
  r = c.Request("GET", "/chunked");
  EXPECT_EQ(r.body, "alpha-beta-gamma");
  EXPECT_EQ(r.header("transfer-encoding"), "");
  // Bodies up: small (buffered whole), large with and without Content-Length
  // (streamed, as the member takes them).
  for (size_t size : {size_t{1000}, size_t{3} << 20}) {
    for (bool length : {true, false}) {
      std::vector<std::pair<std::string, std::string>> headers;
      if (length) headers.emplace_back("content-length", std::to_string(size));
      r = c.Request("POST", "/upload", headers, std::string(size, 'u'));
      ASSERT_EQ(r.status, 200) << size << " " << length << " " << r.body;
      EXPECT_EQ(json::parse(r.body)["body_size"], size) << length;
    }
  }
  // Over the limit while streaming: 413, the connection lives.
  r = c.Request("POST", "/upload", {}, std::string(config_.max_body_bytes + 1, 'u'));
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(c.Request("GET", "/after").status, 200);
}

TEST_F(H2Test, HundredStreamsOnOneConnectionAreSpreadRoundRobinBesideHttp11Clients) {
  EchoBackend a("a"), b("b"), d("d");
  Add("a", a.port());
  Add("b", b.port());
  Add("d", d.port());
  StartProxy();
  H2Client c(proxy_->port());
  ASSERT_TRUE(c.ok()) << c.error();
  c.Pump(100ms);
  EXPECT_EQ(c.max_concurrent_streams(), 100u);
  std::atomic<int> h1_ok{0};
  std::thread h1([&] {
    for (int i = 0; i < 30; ++i) h1_ok += testing::HttpGet(Url("/h1")).status == 200;
  });
  std::vector<int32_t> ids;
  for (int i = 0; i < 100; ++i) ids.push_back(c.Submit("GET", "/s/" + std::to_string(i)));
  ASSERT_TRUE(c.WaitAll(20s));
  h1.join();
  std::map<std::string, int> shares;
  for (int32_t id : ids) {
    ASSERT_EQ(c.response(id).status, 200) << id;
    shares[c.response(id).header("x-served-by")]++;
  }
  EXPECT_EQ(h1_ok.load(), 30);
  ASSERT_EQ(shares.size(), 3u);
  // Round robin across the streams and the HTTP/1.1 requests together.
  for (const auto& [id, n] : shares) EXPECT_GE(n, 20) << id;
  // More than the limit at once: the extra streams are refused, the rest answered.
  std::vector<int32_t> many;
  for (int i = 0; i < 130; ++i) many.push_back(c.Submit("GET", "/sleep/200"));
  ASSERT_TRUE(c.WaitAll(20s));
  int answered = 0, refused = 0;
  for (int32_t id : many) {
    answered += c.response(id).status == 200;
    refused += c.response(id).reset == NGHTTP2_REFUSED_STREAM;
  }
  EXPECT_EQ(answered + refused, 130);
  EXPECT_GE(answered, 100);
}

// A member hand-driven: it answers the first request on each connection with
// a head and 10 of 100 body bytes, then closes; the next with a whole answer.
TEST_F(H2Test, AMemberFailingMidStreamResetsOnlyItsStream) {
  RawMember& raw = StartWithRawMember();
  H2Client c(proxy_->port());
  ASSERT_TRUE(c.ok()) << c.error();
  std::thread member([&] {
    for (int i = 0; i < 2; ++i) {
      const int fd = raw.Accept(5s);
      if (fd < 0) return;
      char buf[4096];
      (void)::recv(fd, buf, sizeof buf, 0);
      const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
      const std::string answer = i == 0 ? head + std::string(10, 'x') : head + std::string(100, 'y');
      testing::SendAll(fd, answer);
      ::shutdown(fd, SHUT_RDWR);
      ::close(fd);
    }
  });
  auto r = c.Request("GET", "/first");
  EXPECT_EQ(r.status, 200);  // the head went out before the member failed
  EXPECT_EQ(r.reset, static_cast<uint32_t>(NGHTTP2_INTERNAL_ERROR));
  EXPECT_EQ(r.body, std::string(10, 'x'));  // what came went out, then the reset
  EXPECT_EQ(Metric("balancer_upstream_cut_answers_total", {{"reason", "reset"}}), 1);
  r = c.Request("GET", "/second");  // the same connection
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.reset, 0u);
  EXPECT_EQ(r.body, std::string(100, 'y'));
  member.join();
}

// A member's chunked trailer section goes to the client as a HEADERS frame
// that ends the stream, without the fields a trailer must not carry.
TEST_F(H2Test, AMembersTrailerSectionEndsTheStream) {
  RawMember& raw = StartWithRawMember();
  H2Client c(proxy_->port());
  ASSERT_TRUE(c.ok()) << c.error();
  std::thread member([&] {
    const int fd = raw.Accept(5s);
    if (fd < 0) return;
    std::string pending;
    char buf[4096];
    for (int i = 0; i < 2; ++i) {  // two answers on one connection
      while (pending.find("\r\n\r\n") == std::string::npos) {
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) return;
        pending.append(buf, static_cast<size_t>(n));
      }
      pending.erase(0, pending.find("\r\n\r\n") + 4);
      const std::string trailer = i == 0 ? "Grpc-Status: 0\r\nSet-Cookie: s=1\r\nGrpc-Message: fine\r\n" : "";
      testing::SendAll(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n" + trailer + "\r\n");
    }
    ::shutdown(fd, SHUT_RDWR);
    ::close(fd);
  });
  auto r = c.Request("GET", "/grpc");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.reset, 0u);
  EXPECT_EQ(r.body, "hello");
  const std::multimap<std::string, std::string> want = {{"grpc-message", "fine"}, {"grpc-status", "0"}};
  EXPECT_EQ(r.trailers, want);
  EXPECT_EQ(r.header("grpc-status"), "");
  r = c.Request("GET", "/plain");  // no trailer: the last DATA frame ends the stream
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "hello");
  EXPECT_TRUE(r.trailers.empty());
  member.join();
}

// A member that switches for a WebSocket Upgrade request: it keeps the
// request head in `seen`, answers 101 (accepting the key, unless
// `bad_accept`), says "hello;", echoes what comes, and at EOF says "bye" and
// closes. `got_eof` tells whether the balancer half-closed (or closed) it.
void ServeWebSocket(int fd, std::string* seen, bool bad_accept = false, std::atomic<bool>* got_eof = nullptr) {
  std::string pending;
  char buf[65536];
  while (pending.find("\r\n\r\n") == std::string::npos) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return;
    pending.append(buf, static_cast<size_t>(n));
  }
  *seen = pending.substr(0, pending.find("\r\n\r\n") + 4);
  pending.erase(0, seen->size());
  std::string lower = *seen;
  for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  std::string key;
  if (const size_t k = lower.find("\r\nsec-websocket-key: "); k != std::string::npos) {
    const size_t from = k + 21;
    key = seen->substr(from, seen->find("\r\n", from) - from);
  }
  const std::string accept = bad_accept ? "bm90IHRoZSBhbnN3ZXI=" : WebSocketAccept(key);
  testing::SendAll(fd, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Accept: " + accept + "\r\nSec-WebSocket-Protocol: chat\r\n\r\nhello;");
  if (!pending.empty()) testing::SendAll(fd, pending);
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      if (got_eof != nullptr && n == 0) *got_eof = true;
      break;
    }
    testing::SendAll(fd, std::string_view(buf, static_cast<size_t>(n)));
  }
  testing::SendAll(fd, "bye");
  ::shutdown(fd, SHUT_RDWR);
  ::close(fd);
}

// RFC 8441: an extended CONNECT becomes an HTTP/1.1 Upgrade to the member,
// and the stream carries the tunnel both ways with flow control; the
// client's END_STREAM half-closes the member, whose close ends the stream.
TEST_F(H2Test, AWebSocketStreamTunnelsToAnHttp11MemberBothWays) {
  RawMember& raw = StartWithRawMember();
  std::string seen;
  std::thread member([&] {
    const int fd = raw.Accept(5s);
    if (fd >= 0) ServeWebSocket(fd, &seen);
  });
  H2Client c(proxy_->port());
  ASSERT_TRUE(c.ok()) << c.error();
  const int32_t id = c.OpenWebSocket("/chat?room=1", {{"sec-websocket-version", "13"}, {"sec-websocket-protocol", "chat"}});
  ASSERT_GT(id, 0) << "no SETTINGS_ENABLE_CONNECT_PROTOCOL from the balancer";
  ASSERT_TRUE(c.PumpUntil([&] { return c.response(id).body == "hello;"; })) << c.response(id).status;
  EXPECT_EQ(c.response(id).status, 200);
  EXPECT_EQ(c.response(id).header("sec-websocket-protocol"), "chat");
  EXPECT_EQ(c.response(id).header("sec-websocket-accept"), "");
  EXPECT_EQ(Metric("balancer_upgraded_connections"), 1);
  // More than a stream's window each way: nothing lost, nothing reordered.
  std::string big(300 * 1024, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  c.SendData(id, big);
  ASSERT_TRUE(c.PumpUntil([&] { return c.response(id).body.size() >= 6 + big.size(); }))
      << c.response(id).body.size();
  EXPECT_TRUE(c.response(id).body == "hello;" + big);
  c.SendData(id, "", /*end=*/true);
  ASSERT_TRUE(c.PumpUntil([&] { return c.response(id).closed; }));
  EXPECT_EQ(c.response(id).reset, 0u);
  EXPECT_TRUE(c.response(id).body.ends_with(big.substr(big.size() - 10) + "bye"));
  member.join();
  std::string lower = seen;
  for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  EXPECT_TRUE(seen.starts_with("GET /chat?room=1 HTTP/1.1\r\n")) << seen;
  EXPECT_NE(lower.find("\r\nupgrade: websocket\r\n"), std::string::npos) << seen;
  EXPECT_NE(lower.find("\r\nconnection: upgrade\r\n"), std::string::npos) << seen;
  EXPECT_NE(lower.find("\r\nsec-websocket-version: 13\r\n"), std::string::npos) << seen;
  EXPECT_NE(lower.find("\r\nsec-websocket-key: "), std::string::npos) << seen;
  EXPECT_TRUE(testing::WaitFor([&] { return Metric("balancer_upgraded_connections") == 0; }, 5s));
}

// A member whose 101 does not accept the balancer's key gets no tunnel
// (502); a stream the client resets closes its member's connection. The
// connection serves on.
TEST_F(H2Test, AWebSocketStreamIsRefusedOrCutOffCleanly) {
  RawMember& raw = StartWithRawMember();
  std::string seen_bad, seen_cancel;
  std::atomic<bool> member_saw_eof{false};
  std::thread member([&] {
    int fd = raw.Accept(5s);
    if (fd >= 0) ServeWebSocket(fd, &seen_bad, /*bad_accept=*/true);
    fd = raw.Accept(5s);
    if (fd >= 0) ServeWebSocket(fd, &seen_cancel, false, &member_saw_eof);
  });
  H2Client c(proxy_->port());
  ASSERT_TRUE(c.ok()) << c.error();
  int32_t id = c.OpenWebSocket("/bad", {{"sec-websocket-version", "13"}});
  ASSERT_GT(id, 0);
  ASSERT_TRUE(c.PumpUntil([&] { return c.response(id).status != 0; }));
  c.SendData(id, "", /*end=*/true);  // a client ends its side once refused
  ASSERT_TRUE(c.PumpUntil([&] { return c.response(id).closed; }));
  EXPECT_EQ(c.response(id).reset, 0u);
  EXPECT_EQ(c.response(id).status, 502);
  EXPECT_EQ(c.response(id).body.find("hello"), std::string::npos);
  id = c.OpenWebSocket("/cancel", {{"sec-websocket-version", "13"}});
  ASSERT_TRUE(c.PumpUntil([&] { return c.response(id).body == "hello;"; }));
  c.Cancel(id);
  EXPECT_TRUE(c.PumpUntil([&] { return member_saw_eof.load(); }, 5s));
  member.join();
  EXPECT_TRUE(testing::WaitFor([&] { return Metric("balancer_upgraded_connections") == 0; }, 5s));
  c.Pump(100ms);
  EXPECT_FALSE(c.disconnected());
  EXPECT_FALSE(c.goaway());
}

TEST(WebSocketAccept, FollowsRfc6455) {
  // The example of RFC 6455 1.3.
  EXPECT_EQ(WebSocketAccept("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  const std::string a = NewWebSocketKey(), b = NewWebSocketKey();
  EXPECT_EQ(a.size(), 24u);  // 16 bytes, base64
  EXPECT_NE(a, b);
}

TEST_F(H2Test, AStreamResetByTheClientAbandonsItsMemberRequest) {
  RawMember& raw = StartWithRawMember();
  H2Client c(proxy_->port());
  ASSERT_TRUE(c.ok()) << c.error();
  const int32_t id = c.Submit("GET", "/slow");
  c.Pump(50ms);
  const int fd = raw.Accept(5s);
  ASSERT_GE(fd, 0);
  char buf[4096];
  ASSERT_GT(::recv(fd, buf, sizeof buf, 0), 0);
  c.Cancel(id);
  // The balancer closes the member's connection: nothing is left to answer.
  EXPECT_EQ(::recv(fd, buf, sizeof buf, 0), 0);
  ::close(fd);
  EXPECT_TRUE(c.response(id).closed);
}

TEST_F(H2Test, RapidResetEndsTheConnectionWithEnhanceYourCalm) {
  StartWithRawMember();  // it never answers: every stream is still waiting when it is reset
  H2Client c(proxy_->port());
  ASSERT_TRUE(c.ok()) << c.error();
  EchoBackend a("a");
  for (int i = 0; i < 2000 && !c.goaway() && !c.disconnected(); ++i) {
    const int32_t id = c.Submit("GET", "/r");
    c.Cancel(id);
  }
  c.Pump(500ms);
  EXPECT_TRUE(c.goaway());
  EXPECT_EQ(c.goaway_code(), static_cast<uint32_t>(NGHTTP2_ENHANCE_YOUR_CALM));
  EXPECT_TRUE(WaitFor([&] { return Metric("balancer_h2_abuse_total", {{"kind", "rapid_reset"}}) == 1; }, 5s));
  // Others are served meanwhile.
  Add("a", a.port());
  H2Client other(proxy_->port());
  int ok = 0;
  for (int i = 0; i < 4; ++i) ok += other.Request("GET", "/fine").status == 200;
  EXPECT_GE(ok, 2);  // the raw member takes its round-robin share and never answers; the echo answers its own
}

TEST_F(H2Test, PingAndSettingsFloodsEndTheConnection) {
  EchoBackend a("a");
  Add("a", a.port());
  StartProxy(1);
  {
    H2Client c(proxy_->port());
    ASSERT_TRUE(c.ok()) << c.error();
    for (int i = 0; i < 5000 && !c.goaway() && !c.disconnected(); ++i) c.Ping();
    c.Pump(300ms);
    EXPECT_TRUE(c.goaway());
    EXPECT_EQ(c.goaway_code(), static_cast<uint32_t>(NGHTTP2_ENHANCE_YOUR_CALM));
  }
  {
    H2Client c(proxy_->port());
    ASSERT_TRUE(c.ok()) << c.error();
    // Empty SETTINGS frames, written raw.
    const std::string settings("\x00\x00\x00\x04\x00\x00\x00\x00\x00", 9);
    std::string burst;
    for (int i = 0; i < 2000; ++i) burst += settings;
    c.SendRaw(burst);
    c.Pump(300ms);
    EXPECT_TRUE(c.goaway());
  }
  // The burst arrives in one read: nghttp2's bound on acknowledgements
  // waiting to be sent may trip before the budget does.
  EXPECT_TRUE(WaitFor(
      [&] {
        return Metric("balancer_h2_abuse_total", {{"kind", "control_flood"}}) +
                   Metric("balancer_h2_abuse_total", {{"kind", "ack_flood"}}) ==
               2;
      },
      5s));
  // A client with a normal number of pings is fine.
  H2Client fine(proxy_->port());
  for (int i = 0; i < 20; ++i) fine.Ping();
  EXPECT_EQ(fine.Request("GET", "/").status, 200);
  EXPECT_FALSE(fine.goaway());
}

TEST_F(H2Test, ADrainSendsGoawayAndFinishesTheStreamsInFlight) {
  EchoBackend a("a");
  Add("a", a.port());
  StartProxy(1);
  H2Client c(proxy_->port());
  ASSERT_TRUE(c.ok()) << c.error();
  const int32_t slow = c.Submit("GET", "/sleep/1500");
  c.Pump(200ms);
  std::thread drain([&] { proxy_->Shutdown(10s); });
  ASSERT_TRUE(c.WaitAll(10s));
  EXPECT_EQ(c.response(slow).status, 200);
  c.Pump(1500ms);
  EXPECT_TRUE(c.goaway());
  EXPECT_EQ(c.goaway_code(), static_cast<uint32_t>(NGHTTP2_NO_ERROR));
  EXPECT_GE(c.goaway_last_stream(), slow);
  drain.join();
  EXPECT_TRUE(c.disconnected() || c.goaway());
  EXPECT_GE(Metric("balancer_h2_goaways_total", {{"code", "no_error"}}), 1);
}

TEST_F(H2Test, AnIdleConnectionGetsGoawayAfterTheIdleTimeout) {
  EchoBackend a("a");
  Add("a", a.port());
  config_.idle_timeout_ms = 300;
  StartProxy(1);
  H2Client c(proxy_->port());
  ASSERT_TRUE(c.ok()) << c.error();
  EXPECT_EQ(c.Request("GET", "/").status, 200);
  c.Pump(1500ms);
  EXPECT_TRUE(c.goaway());
  EXPECT_EQ(c.goaway_code(), static_cast<uint32_t>(NGHTTP2_NO_ERROR));
  EXPECT_TRUE(c.disconnected());
}

TEST_F(H2Test, OverTlsAnAnswerWaitsForAReaderThatPausedAndResumes) {
  // Over TLS the session writes from the handler first and waits for the
  // socket only when a write cannot finish (TlsStream::async_write_after).
  // The client's windows allow 16 MiB unread, far more than the socket
  // buffers of a reader that has stopped: the balancer's writes must wait,
  // then resume when the client reads again, every byte in place.
  EchoBackend a("a");
  Add("a", a.port());
  StartWithTls(1);
  H2Client c(proxy_->tls_port(), /*tls=*/true, 30s);
  ASSERT_TRUE(c.ok()) << c.error();
  constexpr size_t kSize = 4 << 20;
  std::vector<int32_t> ids;
  for (int i = 0; i < 8; ++i) ids.push_back(c.Submit("GET", "/big/" + std::to_string(kSize)));
  c.Pump(1ms);  // the requests go out
  std::this_thread::sleep_for(500ms);  // and nothing is read meanwhile
  ASSERT_TRUE(c.WaitAll(30s));
  for (int32_t id : ids) {
    EXPECT_EQ(c.response(id).status, 200);
    EXPECT_EQ(c.response(id).body.size(), kSize);
  }
  EXPECT_EQ(c.Request("GET", "/after").status, 200);
}

TEST_F(H2Test, TlsOffersH2AndAReloadKeepsH2ConnectionsServing) {
  EchoBackend a("a");
  Add("a", a.port());
  StartWithTls();
  H2Client before(proxy_->tls_port(), /*tls=*/true);
  ASSERT_TRUE(before.ok()) << before.error();
  auto r = before.Request("GET", "/tls");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body)["headers"]["x-forwarded-proto"], "https");
  // HTTP/1.1 clients still get HTTP/1.1.
  testing::TlsClient h1(proxy_->tls_port());
  ASSERT_TRUE(h1.Handshake()) << h1.error();
  EXPECT_EQ(h1.alpn(), "http/1.1");
  EXPECT_NE(h1.Get("/").find("HTTP/1.1 200 OK"), std::string::npos);

  testing::WriteSelfSignedCert(dir_.path(), "server", "two.test");
  ASSERT_TRUE(tls_->Reload().ok());
  EXPECT_EQ(before.Request("GET", "/after-reload").status, 200);
  H2Client after(proxy_->tls_port(), true);
  ASSERT_TRUE(after.ok()) << after.error();
  EXPECT_EQ(after.Request("GET", "/new").status, 200);
}

TEST_F(H2Test, EachWayInCanBeTurnedOff) {
  EchoBackend a("a");
  Add("a", a.port());
  config_.h2 = false;
  config_.h2c = false;
  StartWithTls();
  // TLS: a client that offers only h2 is refused (no common protocol).
  H2Client tls(proxy_->tls_port(), true);
  EXPECT_FALSE(tls.ok());
  // Plain: the preface is no HTTP/1.1 request.
  H2Client plain(proxy_->port());
  plain.Pump(300ms);
  EXPECT_TRUE(plain.disconnected() || !plain.ok());
  EXPECT_EQ(Metric("balancer_h2_streams_total"), 0);
}

}  // namespace
}  // namespace webtier::balancer
