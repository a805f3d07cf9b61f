// TLS termination (balancer/README.md "TLS termination") against an
// in-process ProxyServer with a TLS listener, a certificate made at run time
// and real sockets: HTTPS reaches the member with X-Forwarded-Proto https,
// only TLS 1.2/1.3, ALPN http/1.1, resumption, and the abuse a TLS port sees
// (garbage before the ClientHello, slow handshakes, renegotiation, random
// bytes) is refused, counted and harmless. Reload on SIGHUP is in
// balancer_integration_test.cc (a process).
#include <gtest/gtest.h>

#include <cstring>

#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include "echo_backend.h"
#include "proxy_fixture.h"
#include "webtier/balancer/tls/tls_context.h"
#include "webtier/testing/harness.h"
#include "webtier/testing/tls.h"

namespace webtier::balancer {
namespace {

using namespace std::chrono_literals;
using testing::TlsClient;
using testing::TlsClientOptions;

class TlsTest : public ProxyFixture {
 protected:
  // With the echo member unless `echo` is false.
  void StartTls(int threads = 2, bool echo = true) {
    files_ = testing::WriteSelfSignedCert(dir_.path(), "server", "one.test");
    tls_ = std::make_unique<TlsContext>(files_.cert, files_.key);
    ASSERT_TRUE(tls_->Load().ok());
    config_.listen = {"127.0.0.1", 0};
    config_.tls_listen = net::HostPort{"127.0.0.1", 0};
    config_.threads = threads;
    proxy_ = std::make_unique<ProxyServer>(config_, pool_, metrics_, tls_.get());
    ASSERT_TRUE(proxy_->Start().ok());
    ASSERT_NE(proxy_->tls_port(), 0);
    if (echo) Add("echo", echo_.port());
  }
  void TearDown() override { proxy_.reset(); }  // before the TLS context it reads at accept

  double Handshakes(const char* result) { return Metric("balancer_tls_handshakes_total", {{"result", result}}); }
  // A fresh TLS connection gets a proper answer from the member.
  void ExpectServing() {
    TlsClient c(proxy_->tls_port());
    ASSERT_TRUE(c.Handshake()) << c.error();
    EXPECT_NE(c.Get("/still").find("HTTP/1.1 200 OK"), std::string::npos);
  }

  testing::TempDir dir_{"tls-test"};
  testing::TlsFiles files_;
  std::unique_ptr<TlsContext> tls_;
  testing::EchoBackend echo_{"echo"};
};

TEST_F(TlsTest, HttpsReachesTheMemberAsHttpsAndPlainAsHttp) {
  StartTls();
  TlsClient c(proxy_->tls_port());
  ASSERT_TRUE(c.Handshake()) << c.error();
  EXPECT_EQ(c.peer_common_name(), "one.test");
  // Keep-alive: three requests on one TLS connection, each sent on as https
  // (the client's own claim is replaced).
  for (int i = 0; i < 3; ++i) {
    const std::string res = c.Get("/hello", {"X-Forwarded-Proto: http"});
    ASSERT_NE(res.find("HTTP/1.1 200 OK"), std::string::npos) << res;
    EXPECT_NE(res.find("\"x-forwarded-proto\":\"https\""), std::string::npos) << res;
  }
  EXPECT_EQ(Handshakes("full"), 1);
  // Connection: close ends with a close_notify (a clean TLS close, not a
  // truncation the client could not tell from an attack).
  ASSERT_NE(c.Get("/last", {"Connection: close"}).find("HTTP/1.1 200 OK"), std::string::npos);
  char byte;
  const int n = SSL_read(c.ssl(), &byte, 1);
  EXPECT_EQ(n, 0);
  EXPECT_EQ(SSL_get_error(c.ssl(), n), SSL_ERROR_ZERO_RETURN);
  const auto plain = testing::HttpRequest("GET", Url("/hello"), {"X-Forwarded-Proto: https"});
  ASSERT_EQ(plain.status, 200) << plain.error;
  EXPECT_NE(plain.body.find("\"x-forwarded-proto\":\"http\""), std::string::npos) << plain.body;
}

TEST_F(TlsTest, OnlyTls12And13AreSpoken) {
  StartTls();
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    TlsClient c(proxy_->tls_port(), {.min_version = version, .max_version = version});
    ASSERT_TRUE(c.Handshake()) << c.error();
    EXPECT_EQ(c.version(), version == TLS1_2_VERSION ? "TLSv1.2" : "TLSv1.3");
    EXPECT_NE(c.Get("/").find("200 OK"), std::string::npos);
  }
  for (int version : {TLS1_VERSION, TLS1_1_VERSION}) {
    // The client may offer it (security level 0); the server refuses it
    // with a protocol_version alert.
    TlsClient c(proxy_->tls_port(), {.min_version = version, .max_version = version, .legacy = true});
    EXPECT_FALSE(c.Handshake());
    EXPECT_NE(c.error().find("alert protocol version"), std::string::npos) << c.error();
  }
  EXPECT_TRUE(testing::WaitFor([&] { return Handshakes("failed") == 2; }, 2s)) << Handshakes("failed");
}

TEST_F(TlsTest, AlpnSelectsHttp11) {
  StartTls();
  {
    TlsClient c(proxy_->tls_port(), {.alpn = {"h2", "http/1.1"}});
    ASSERT_TRUE(c.Handshake()) << c.error();
    EXPECT_EQ(c.alpn(), "http/1.1");
  }
  {
    TlsClient c(proxy_->tls_port(), {.alpn = {}});  // no ALPN at all is fine
    ASSERT_TRUE(c.Handshake()) << c.error();
    EXPECT_EQ(c.alpn(), "");
    EXPECT_NE(c.Get("/").find("200 OK"), std::string::npos);
  }
  {
    TlsClient c(proxy_->tls_port(), {.alpn = {"h2"}});  // nothing in common: refused (RFC 7301)
    EXPECT_FALSE(c.Handshake());
    EXPECT_NE(c.error().find("no application protocol"), std::string::npos) << c.error();
  }
}

TEST_F(TlsTest, SessionsAreResumedWithTls12And13) {
  StartTls();
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    testing::TlsSession session;
    {
      TlsClient first(proxy_->tls_port(), {.min_version = version, .max_version = version});
      ASSERT_TRUE(first.Handshake()) << first.error();
      EXPECT_FALSE(first.reused());
      ASSERT_NE(first.Get("/").find("200 OK"), std::string::npos);  // TLS 1.3: the ticket comes after
      session = first.session();
      ASSERT_EQ(SSL_SESSION_is_resumable(session.get()), 1);
    }
    ASSERT_EQ(SSL_SESSION_is_resumable(session.get()), 1);
    // Two workers: the second connection may land on either; both resume.
    for (int i = 0; i < 4; ++i) {
      TlsClient again(proxy_->tls_port(), {.min_version = version, .max_version = version, .resume = session});
      ASSERT_TRUE(again.Handshake()) << again.error();
      EXPECT_TRUE(again.reused()) << version;
      EXPECT_NE(again.Get("/").find("200 OK"), std::string::npos);
    }
  }
  EXPECT_EQ(Handshakes("resumed"), 8);
  EXPECT_EQ(Handshakes("full"), 2);
}

// Ticket keys rotate at every reload (and hourly): a ticket sealed before a
// reload resumes once more (under the previous key, and is renewed); after a
// second rotation it no longer opens, so a key taken from memory decrypts at
// most two periods of recorded sessions.
TEST_F(TlsTest, TicketKeysRotateOnReloadAndOldTicketsStopResuming) {
  StartTls(1);
  auto ticket = [&] {
    TlsClient c(proxy_->tls_port(), {.min_version = TLS1_3_VERSION, .max_version = TLS1_3_VERSION});
    EXPECT_TRUE(c.Handshake()) << c.error();
    EXPECT_NE(c.Get("/").find("200 OK"), std::string::npos);  // TLS 1.3: the ticket comes after
    return c.session();
  };
  auto resumes = [&](const testing::TlsSession& session) {
    TlsClient c(proxy_->tls_port(), {.min_version = TLS1_3_VERSION, .max_version = TLS1_3_VERSION, .resume = session});
    EXPECT_TRUE(c.Handshake()) << c.error();
    EXPECT_NE(c.Get("/").find("200 OK"), std::string::npos);
    return c.reused();
  };
  const uint64_t rotations = tls_->ticket_key_rotations();
  const testing::TlsSession old = ticket();
  EXPECT_TRUE(resumes(old));
  // A resumed client gets a fresh ticket at once (as with OpenSSL's own
  // keys): without one, a client with Nagle on waits out the server's delayed
  // ACK before its first request goes.
  {
    TlsClient c(proxy_->tls_port(), {.min_version = TLS1_3_VERSION, .max_version = TLS1_3_VERSION, .resume = old});
    ASSERT_TRUE(c.Handshake()) << c.error();
    ASSERT_NE(c.Get("/").find("200 OK"), std::string::npos);
    ASSERT_TRUE(c.reused());
    const unsigned char *a = nullptr, *b = nullptr;
    size_t alen = 0, blen = 0;
    const testing::TlsSession renewed = c.session();
    SSL_SESSION_get0_ticket(old.get(), &a, &alen);
    SSL_SESSION_get0_ticket(renewed.get(), &b, &blen);
    ASSERT_GT(alen, 0u);
    ASSERT_GT(blen, 0u);
    EXPECT_FALSE(alen == blen && std::memcmp(a, b, alen) == 0) << "no new ticket after resumption";
  }
  ASSERT_TRUE(tls_->Reload().ok());
  EXPECT_EQ(tls_->ticket_key_rotations(), rotations + 1);
  EXPECT_TRUE(resumes(old)) << "a ticket from before one reload resumes";
  ASSERT_TRUE(tls_->Reload().ok());
  EXPECT_FALSE(resumes(old)) << "a ticket two rotations old must not open";
  // The service goes on: fresh tickets resume.
  EXPECT_TRUE(resumes(ticket()));
}

// A handover in one process: a second ProxyServer adopts copies of the
// first one's listening sockets and takes its ticket keys; the first stops
// accepting. Tickets the first issued resume on the second, a context
// without the keys does a full handshake, and malformed keys are refused.
TEST_F(TlsTest, TicketsIssuedBeforeAHandoverResumeAfterIt) {
  StartTls(2);
  testing::TlsSession session;
  {
    TlsClient c(proxy_->tls_port(), {.min_version = TLS1_3_VERSION, .max_version = TLS1_3_VERSION});
    ASSERT_TRUE(c.Handshake()) << c.error();
    ASSERT_NE(c.Get("/").find("200 OK"), std::string::npos);
    session = c.session();
  }
  TlsContext successor_tls(files_.cert, files_.key);
  ASSERT_TRUE(successor_tls.Load().ok());
  EXPECT_FALSE(successor_tls.ImportTicketKeys("not keys").ok());
  ASSERT_TRUE(successor_tls.ImportTicketKeys(tls_->ExportTicketKeys()).ok());
  std::vector<int> plain, secure;
  for (int fd : proxy_->listener_fds(false)) plain.push_back(::dup(fd));
  for (int fd : proxy_->listener_fds(true)) secure.push_back(::dup(fd));
  ASSERT_EQ(secure.size(), 2u) << "one TLS socket per thread";
  Config one_thread = config_;
  one_thread.threads = 1;  // two handed-over sockets on one thread: both are accepted on
  ProxyServer successor(one_thread, pool_, metrics_, &successor_tls);
  ASSERT_TRUE(successor.Start(plain, secure).ok());
  EXPECT_EQ(successor.tls_port(), proxy_->tls_port());
  EXPECT_EQ(successor.port(), proxy_->port());
  proxy_->StopAccepting();
  for (int i = 0; i < 4; ++i) {
    TlsClient c(successor.tls_port(), {.min_version = TLS1_3_VERSION, .max_version = TLS1_3_VERSION, .resume = session});
    ASSERT_TRUE(c.Handshake()) << c.error();
    EXPECT_NE(c.Get("/").find("200 OK"), std::string::npos);
    EXPECT_TRUE(c.reused()) << "a ticket from before the handover";
  }
  // Without the keys the same ticket does not open (the test has teeth).
  TlsContext stranger(files_.cert, files_.key);
  ASSERT_TRUE(stranger.Load().ok());
  ASSERT_TRUE(successor_tls.ImportTicketKeys(stranger.ExportTicketKeys()).ok());
  TlsClient c(successor.tls_port(), {.min_version = TLS1_3_VERSION, .max_version = TLS1_3_VERSION, .resume = session});
  ASSERT_TRUE(c.Handshake()) << c.error();
  EXPECT_FALSE(c.reused());
  successor.Shutdown(std::chrono::milliseconds(0));
}

TEST_F(TlsTest, GarbageBeforeTheClientHelloIsClosedAndCounted) {
  StartTls();
  for (const std::string& garbage :
       {std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), std::string("\x16\x03\x01\x00\x05hello", 10),
        std::string(3000, '\0')}) {
    const std::string back = testing::RawExchange(proxy_->tls_port(), garbage, 3s);
    // A TLS alert at most, never an HTTP answer: the bytes are not a request.
    EXPECT_EQ(back.find("HTTP/"), std::string::npos) << back;
  }
  EXPECT_TRUE(testing::WaitFor([&] { return Handshakes("failed") == 3; }, 2s)) << Handshakes("failed");
  ExpectServing();
}

TEST_F(TlsTest, ASlowHandshakeIsCutByTheHeaderDeadline) {
  config_.header_timeout_ms = 300;
  StartTls();
  // Half a ClientHello record header, then nothing.
  const auto start = std::chrono::steady_clock::now();
  const std::string back = testing::RawExchange(proxy_->tls_port(), std::string("\x16\x03\x01", 3), 5s);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(back.empty());
  EXPECT_LT(took, 4s);  // closed by the balancer, not by the client's patience
  EXPECT_TRUE(testing::WaitFor([&] { return Handshakes("timeout") == 1; }, 2s));
  // A connection that says nothing at all is cut too.
  const std::string silent = testing::RawExchange(proxy_->tls_port(), "", 5s);
  EXPECT_TRUE(testing::WaitFor([&] { return Handshakes("timeout") == 2; }, 2s));
  ExpectServing();
}

TEST_F(TlsTest, RenegotiationIsRefused) {
  StartTls();
  TlsClient c(proxy_->tls_port(), {.min_version = TLS1_2_VERSION, .max_version = TLS1_2_VERSION});
  ASSERT_TRUE(c.Handshake()) << c.error();
  ASSERT_NE(c.Get("/").find("200 OK"), std::string::npos);
  EXPECT_FALSE(c.Renegotiate());
  EXPECT_NE(c.error().find("no renegotiation"), std::string::npos) << c.error();
  ExpectServing();
}

TEST_F(TlsTest, RandomBytesFromAPeerNeverHurtTheProcess) {
  StartTls();
  std::mt19937 rng(15);
  std::uniform_int_distribution<int> byte(0, 255), size(1, 4000);
  for (int i = 0; i < 60; ++i) {
    std::string junk(static_cast<size_t>(size(rng)), '\0');
    for (char& ch : junk) ch = static_cast<char>(byte(rng));
    if (i % 3 == 1) junk.insert(0, std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11));  // a ClientHello start
    if (i % 3 == 2) {
      // After a complete handshake: records that are not TLS records.
      TlsClient c(proxy_->tls_port());
      ASSERT_TRUE(c.Handshake()) << c.error();
      testing::SendAll(c.fd(), junk);
      char buf[256];
      while (::recv(c.fd(), buf, sizeof buf, 0) > 0) {
      }
      continue;
    }
    testing::RawExchange(proxy_->tls_port(), junk, 2s);
  }
  ExpectServing();
  EXPECT_TRUE(testing::WaitFor([&] { return proxy_->open_connections() == 0; }, 3s)) << proxy_->open_connections();
}

// The TLS stream runs OpenSSL on the socket itself: records bigger than one
// write, several records per read, a TLS 1.3 KeyUpdate the server must answer
// from inside a read, and a client that leaves in the middle of an answer.
TEST_F(TlsTest, BigBodiesKeyUpdatesAndVanishingClientsCrossTheStreamIntact) {
  StartTls();
  {
    TlsClient c(proxy_->tls_port(), {.min_version = TLS1_3_VERSION, .max_version = TLS1_3_VERSION});
    ASSERT_TRUE(c.Handshake()) << c.error();
    // 1 MB up (64 records), answered with its size.
    const std::string body(1 << 20, 'b');
    ASSERT_TRUE(c.Write("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body));
    std::string res = c.ReadResponse();
    ASSERT_NE(res.find("HTTP/1.1 200 OK"), std::string::npos) << res.substr(0, 200);
    EXPECT_NE(res.find("\"body_size\":1048576"), std::string::npos) << res.substr(0, 400);
    // 3 MB down on the same connection.
    res = c.Get("/big/3000000");
    ASSERT_NE(res.find("HTTP/1.1 200 OK"), std::string::npos) << res.substr(0, 200);
    EXPECT_EQ(res.size() - res.find("\r\n\r\n") - 4, 3000000u);
    // New keys both ways: the server updates its own when asked, mid-connection.
    ASSERT_EQ(SSL_key_update(c.ssl(), SSL_KEY_UPDATE_REQUESTED), 1);
    for (int i = 0; i < 3; ++i) ASSERT_NE(c.Get("/after-update").find("HTTP/1.1 200 OK"), std::string::npos);
    EXPECT_EQ(Handshakes("full"), 1);
  }

  // A client gone (RST) while 20 MB are on their way: the connection ends,
  // nothing else does.
  {
    TlsClient gone(proxy_->tls_port());
    ASSERT_TRUE(gone.Handshake()) << gone.error();
    ASSERT_TRUE(gone.Write("GET /big/20000000 HTTP/1.1\r\nHost: x\r\n\r\n"));
    char buf[4096];
    ASSERT_GT(SSL_read(gone.ssl(), buf, sizeof buf), 0);
    const linger abort{1, 0};
    ::setsockopt(gone.fd(), SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
  }
  ExpectServing();
  EXPECT_TRUE(testing::WaitFor([&] { return proxy_->open_connections() == 0; }, 3s)) << proxy_->open_connections();
}

TEST_F(TlsTest, AnUpgradeOverTlsIsTunnelledToAPlainMember) {
  uint16_t port = 0;
  const int listener = testing::ListenLoopback(&port);
  std::thread member([listener] {
    const int fd = ::accept(listener, nullptr, nullptr);
    if (fd < 0) return;
    std::string head;
    char buf[4096];
    ssize_t n;
    while (head.find("\r\n\r\n") == std::string::npos && (n = ::recv(fd, buf, sizeof buf, 0)) > 0)
      head.append(buf, static_cast<size_t>(n));
    const bool https = head.find("X-Forwarded-Proto: https\r\n") != std::string::npos;
    testing::SendAll(fd, std::string("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n") +
                             (https ? "via-https:" : "via-http:"));
    while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) testing::SendAll(fd, std::string(buf, static_cast<size_t>(n)));
    ::close(fd);
  });
  struct Join {
    std::thread& t;
    int listener;
    ~Join() {
      ::shutdown(listener, SHUT_RDWR);  // an accept still waiting returns
      t.join();
      ::close(listener);
    }
  } join{member, listener};
  StartTls(2, /*echo=*/false);
  Add("raw", port);
  TlsClient c(proxy_->tls_port());
  ASSERT_TRUE(c.Handshake()) << c.error();
  ASSERT_TRUE(c.Write("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"));
  std::string got;
  char buf[4096];
  auto read_until = [&](const std::string& marker) {
    while (got.find(marker) == std::string::npos) {
      const int n = SSL_read(c.ssl(), buf, sizeof buf);
      if (n <= 0) return false;
      got.append(buf, static_cast<size_t>(n));
    }
    return true;
  };
  ASSERT_TRUE(read_until("via-https:")) << got;
  EXPECT_NE(got.find("HTTP/1.1 101"), std::string::npos) << got;
  const std::string big(100000, 'w');
  ASSERT_TRUE(c.Write("ping" + big + "END"));
  EXPECT_TRUE(read_until("ping" + big + "END"));
  EXPECT_EQ(Metric("balancer_upgraded_connections"), 1);
  ::shutdown(c.fd(), SHUT_RDWR);
  EXPECT_TRUE(testing::WaitFor([&] { return Metric("balancer_upgraded_connections") == 0; }, 3s));
}

}  // namespace
}  // namespace webtier::balancer
