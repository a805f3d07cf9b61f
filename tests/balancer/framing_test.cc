// Raw-socket regression suite for the edge's request framing (balancer/README.md
// "Request handling"): each case sends exact bytes to an in-process
// ProxyServer and checks the status line the client gets AND the exact
// requests the member got, read off its socket by a recording member (so a
// smuggled second request or a trailer turned header field would show).
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/beast/http.hpp>

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
using testing::RawExchange;
namespace http = boost::beast::http;

// A member that keeps the bytes of every request it gets (one string per
// request, split where a strict parser says the request ends) and answers
// each with 200 "ok". A connection whose bytes do not parse is recorded whole
// and closed.
class RecordingMember {
 public:
  RecordingMember() {
    listen_fd_ = testing::ListenLoopback(&port_, 16);
    acceptor_ = std::thread([this] { Accept(); });
  }
  ~RecordingMember() {
    stop_ = true;
    acceptor_.join();
    for (auto& t : connections_) t.join();
    ::close(listen_fd_);
  }
  uint16_t port() const { return port_; }
  std::vector<std::string> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  void Accept() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) connections_.emplace_back([this, fd] { Serve(fd); });
    }
  }

  void Serve(int fd) {
    std::string pending;
    char buf[65536];
    while (!stop_) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      pending.append(buf, static_cast<size_t>(n));
      if (!AnswerWholeRequests(fd, pending)) break;
    }
    ::close(fd);
  }

  // Records and answers every whole request at the front of `pending`;
  // false when the bytes are not HTTP.
  bool AnswerWholeRequests(int fd, std::string& pending) {
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.eager(true);
      parser.body_limit(1 << 24);
      boost::beast::error_code ec;
      size_t used = 0;
      while (used < pending.size() && !parser.is_done()) {
        const size_t k = parser.put(boost::asio::buffer(pending.data() + used, pending.size() - used), ec);
        used += k;
        if (ec || k == 0) break;
      }
      if (ec && ec != http::error::need_more) {
        Record(pending);
        return false;
      }
      if (!parser.is_done()) return true;
      Record(pending.substr(0, used));
      pending.erase(0, used);
      static constexpr std::string_view kOk = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
      if (!testing::SendAll(fd, kOk)) return false;
    }
  }

  void Record(std::string request) {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back(std::move(request));
  }

  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::vector<std::thread> connections_;  // touched by the acceptor thread only until it is joined
  mutable std::mutex mu_;
  std::vector<std::string> requests_;
};

http::request<http::string_body> ParseRequest(const std::string& raw) {
  http::request_parser<http::string_body> p;
  p.eager(true);
  boost::beast::error_code ec;
  p.put(boost::asio::buffer(raw), ec);
  EXPECT_FALSE(ec) << ec.message() << " in:\n" << raw;
  EXPECT_TRUE(p.is_done()) << raw;
  return p.release();
}

std::string Head(const std::string& raw) { return raw.substr(0, raw.find("\r\n\r\n") + 4); }

class FramingTest : public ProxyFixture {
 protected:
  void SetUp() override {
    Add("m", member_.port());
    StartProxy(1);
  }
  // The proxy goes before the member it holds connections to.
  void TearDown() override { proxy_.reset(); }
  std::string Send(const std::string& raw, std::chrono::milliseconds pause = 0ms, size_t pause_after = std::string::npos) {
    return RawExchange(proxy_->port(), raw, 5s, pause_after, pause);
  }
  double Rejected(const std::string& reason) { return Metric("balancer_rejected_requests_total", {{"reason", reason}}); }

  RecordingMember member_;
};

// A request the balancer must refuse before any byte reaches the member.
struct Refused {
  std::string bytes;
  std::string status_line;
  std::string reason;  // balancer_rejected_requests_total{reason}
};

// The second request hidden in a body: it must never reach the member.
constexpr char kSmuggled[] = "0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";

std::string ChunkedPost(const std::string& transfer_encoding) {
  return "POST /in HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: " + transfer_encoding + "\r\n\r\n" + kSmuggled;
}

TEST_F(FramingTest, RefusesEveryAmbiguousOrUnsupportedFramingAndTarget) {
  const std::vector<Refused> cases = {
      {ChunkedPost("chunked, chunked"), "HTTP/1.1 400 Bad Request", "smuggling"},
      {ChunkedPost("identity, chunked, chunked"), "HTTP/1.1 400 Bad Request", "smuggling"},
      {ChunkedPost("gzip, chunked"), "HTTP/1.1 400 Bad Request", "smuggling"},
      {ChunkedPost("chunked;q=1"), "HTTP/1.1 400 Bad Request", "smuggling"},
      {ChunkedPost("chunked=1"), "HTTP/1.1 400 Bad Request", "smuggling"},
      {ChunkedPost("chunked, identity"), "HTTP/1.1 400 Bad Request", "smuggling"},
      {ChunkedPost(", chunked"), "HTTP/1.1 400 Bad Request", "smuggling"},
      {"POST /in HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n" +
           std::string(kSmuggled),
       "HTTP/1.1 400 Bad Request", "smuggling"},
      {"POST /in HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n" +
           std::string(kSmuggled),
       "HTTP/1.1 400 Bad Request", "smuggling"},
      {"POST /in HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n" + std::string(kSmuggled), "HTTP/1.1 400 Bad Request",
       "smuggling"},
      {ChunkedPost("br, chunked"), "HTTP/1.1 501 Not Implemented", "unsupported_coding"},
      {ChunkedPost("foo"), "HTTP/1.1 501 Not Implemented", "unsupported_coding"},
      {"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", "HTTP/1.1 405 Method Not Allowed",
       "bad_request"},
      {"GET example.com:80 HTTP/1.1\r\nHost: example.com\r\n\r\n", "HTTP/1.1 400 Bad Request", "bad_request"},
      {"GET * HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 400 Bad Request", "bad_request"},
      {"GET ftp://example.com/a HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 400 Bad Request", "bad_request"},
      {"GET http://user@example.com/a HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 400 Bad Request", "bad_request"},
      // A trailer may not frame the message either (Beast refuses it; nothing left).
      {"POST /in HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
       "3\r\nabc\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n",
       "HTTP/1.1 400 Bad Request", "bad_request"},
  };
  std::map<std::string, double> expected;
  for (const auto& c : cases) {
    const std::string got = Send(c.bytes);
    EXPECT_TRUE(got.starts_with(c.status_line + "\r\n")) << "sent:\n" << c.bytes << "\ngot:\n" << got;
    EXPECT_NE(got.find("Connection: close\r\n"), std::string::npos) << got;
    if (c.status_line.find(" 405 ") != std::string::npos) {
      EXPECT_NE(got.find("\r\nAllow: GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, TRACE\r\n"), std::string::npos)
          << got;
    }
    ++expected[c.reason];
  }
  for (const auto& [reason, count] : expected) EXPECT_EQ(Rejected(reason), count) << reason;
  // Nothing went to the member: neither the refused requests nor what their bodies hid.
  EXPECT_TRUE(member_.requests().empty()) << member_.requests().front();
}

TEST_F(FramingTest, ChunkedBodyGoesOnAloneAndItsTrailerNeverBecomesAHeader) {
  auto with_trailer = [](const std::string& extra) {
    return "POST /in HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1\r\nTransfer-Encoding: chunked\r\n"
           "Connection: close\r\n\r\n"
           "5\r\nhello\r\n0\r\nHost: evil\r\nX-Forwarded-For: 6.6.6.6\r\nAuthorization: Bearer stolen\r\n" +
           extra + "X-Trailer: t\r\n\r\n";
  };
  // Beast refuses a Content-Length in the trailer of a chunked body: a plain 400, nothing forwarded.
  const std::string got = Send(with_trailer("Content-Length: 100\r\n"));
  ASSERT_TRUE(got.starts_with("HTTP/1.1 400 Bad Request\r\n")) << got;
  EXPECT_TRUE(member_.requests().empty());

  const std::string ok = with_trailer("");
  const std::string answer = Send(ok);
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 200 OK\r\n")) << answer;
  const auto requests = member_.requests();
  ASSERT_EQ(requests.size(), 1u);
  const std::string head = Head(requests[0]);
  EXPECT_TRUE(head.starts_with("POST /in HTTP/1.1\r\n")) << head;
  for (const char* leaked : {"evil", "6.6.6.6", "Authorization", "stolen", "X-Trailer"}) {
    EXPECT_EQ(requests[0].find(leaked), std::string::npos) << leaked << " in:\n" << requests[0];
  }
  const auto req = ParseRequest(requests[0]);
  EXPECT_EQ(req[http::field::host], "a");
  EXPECT_EQ(req["X-Forwarded-For"], "10.0.0.1, 127.0.0.1");
  EXPECT_EQ(req[http::field::content_length], "5");
  EXPECT_EQ(req.body(), "hello");
}

TEST_F(FramingTest, StreamedChunkedBodyEndsWithoutItsTrailer) {
  const std::string chunk(70000, 'z');
  const std::string sent =
      "POST /big HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
      std::string("11170\r\n") + chunk +  // 0x11170 = 70000: over the 64 KiB buffered, so streamed
      "\r\n0\r\nHost: evil\r\nAuthorization: Bearer stolen\r\nX-Trailer: t\r\n\r\n";
  // The trailer comes after a pause: the head has left with the first 64 KiB by then.
  const std::string answer = Send(sent, 300ms, sent.find("\r\n0\r\n"));
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 200 OK\r\n")) << answer.substr(0, 200);
  const auto requests = member_.requests();
  ASSERT_EQ(requests.size(), 1u);
  for (const char* leaked : {"evil", "Authorization", "stolen", "X-Trailer"}) {
    EXPECT_EQ(requests[0].find(leaked), std::string::npos) << leaked;
  }
  EXPECT_TRUE(requests[0].ends_with("\r\n0\r\n\r\n"));
  const auto req = ParseRequest(requests[0]);
  EXPECT_EQ(req[http::field::transfer_encoding], "chunked");
  EXPECT_EQ(req.body(), chunk);
}

TEST_F(FramingTest, AbsoluteFormBecomesOriginFormWithHostFromTheTarget) {
  std::string got = Send("GET http://example.com:8080/a?b HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(got.starts_with("HTTP/1.1 200 OK\r\n")) << got;
  got = Send("OPTIONS * HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(got.starts_with("HTTP/1.1 200 OK\r\n")) << got;
  got = Send("GET HTTP://example.org?q HTTP/1.0\r\n\r\n");
  EXPECT_TRUE(got.starts_with("HTTP/1.0 200 OK\r\n")) << got;

  const auto requests = member_.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_TRUE(requests[0].starts_with("GET /a?b HTTP/1.1\r\n")) << requests[0];
  auto req = ParseRequest(requests[0]);
  EXPECT_EQ(req.count(http::field::host), 1u);
  EXPECT_EQ(req[http::field::host], "example.com:8080");
  EXPECT_TRUE(requests[1].starts_with("OPTIONS * HTTP/1.1\r\n")) << requests[1];
  EXPECT_TRUE(requests[2].starts_with("GET /?q HTTP/1.1\r\n")) << requests[2];
  EXPECT_EQ(ParseRequest(requests[2])[http::field::host], "example.org");
}

// HTTP/1.0 may omit Host; the member gets HTTP/1.1, which must carry one: the
// authority the request's target URI has, the address the client came to
// (RFC 9112 3.3). An empty Host, the other legal choice, is what nginx refuses
// with 400 (and closes: a new member connection per such request).
TEST_F(FramingTest, Http10WithoutHostGoesOnWithTheAddressItCameTo) {
  std::string got = Send("GET /p HTTP/1.0\r\n\r\n");
  EXPECT_TRUE(got.starts_with("HTTP/1.0 200 OK\r\n")) << got;
  const auto requests = member_.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_TRUE(requests[0].starts_with("GET /p HTTP/1.1\r\n")) << requests[0];
  const auto req = ParseRequest(requests[0]);
  EXPECT_EQ(req.count(http::field::host), 1u);
  EXPECT_EQ(req[http::field::host], "127.0.0.1:" + std::to_string(proxy_->port()));
}

// Hosts that are not authorities, obs-fold in Host, and more field lines
// than --max-header-fields: refused before anything reaches the member.
// RFC 9112 9.6: a server that closes after refusing a request shuts its
// write side and keeps reading for a while, so that what the client still
// sends does not turn into a reset that destroys the answer before the client
// reads it. A client that sent 256 KiB after a refused head and reads only
// 200 ms later still gets the whole 400.
TEST_F(FramingTest, ARefusedRequestsAnswerSurvivesAClientThatReadsLate) {
  const int fd = testing::ConnectLoopback(proxy_->port(), 5s);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(testing::SendAll(fd, "POST /in HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n"));
  const std::string rest(256 * 1024, 'x');
  testing::SendAll(fd, rest);  // the balancer may stop reading: best effort
  std::this_thread::sleep_for(200ms);
  std::string got;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) got.append(buf, static_cast<size_t>(n));
  const int err = errno;
  ::close(fd);
  EXPECT_TRUE(got.starts_with("HTTP/1.1 400 ")) << "read " << got.size() << " bytes, errno " << err << ": " << got;
  EXPECT_TRUE(got.ends_with("}\n")) << got;  // the whole JSON body
  EXPECT_TRUE(member_.requests().empty());
}

TEST_F(FramingTest, RefusesInvalidHostsAndTooManyFields) {
  std::string many = "GET /p HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 100; ++i) many += "b: x\r\n";
  // The shape that cost a worker tens of milliseconds when each field was
  // checked against every Connection token: ~15 KiB of tokens and fields.
  std::string tokens;
  for (int i = 0; i < 1400; ++i) tokens += (i ? ",t" : "t") + std::to_string(i);
  std::string quadratic = "GET /p HTTP/1.1\r\nHost: a\r\nConnection: " + tokens + "\r\n";
  for (int i = 0; i < 300; ++i) quadratic += "b: x\r\n";
  const std::vector<Refused> cases = {
      {"GET /p HTTP/1.1\r\nHost: a b\r\n\r\n", "HTTP/1.1 400 Bad Request", "bad_request"},
      {"GET /p HTTP/1.1\r\nHost: evil.example/x@probe\r\n\r\n", "HTTP/1.1 400 Bad Request", "bad_request"},
      {"GET /p HTTP/1.1\r\nHost: a@b\r\n\r\n", "HTTP/1.1 400 Bad Request", "bad_request"},
      {"GET /p HTTP/1.1\r\nHost: good.example\r\n extra\r\n\r\n", "HTTP/1.1 400 Bad Request", "bad_request"},
      {"GET http://a b/p HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 400 Bad Request", "bad_request"},
      {"GET @127.0.0.1:9090/x HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 400 Bad Request", "bad_request"},
      {many + "\r\n", "HTTP/1.1 431 Request Header Fields Too Large", "too_many_fields"},
      {quadratic + "\r\n", "HTTP/1.1 431 Request Header Fields Too Large", "too_many_fields"},
  };
  ASSERT_LT(quadratic.size(), config_.max_header_bytes);
  std::map<std::string, double> expected;
  for (const auto& c : cases) {
    const std::string got = Send(c.bytes);
    EXPECT_TRUE(got.starts_with(c.status_line + "\r\n")) << "sent:\n" << c.bytes.substr(0, 200) << "\ngot:\n" << got;
    ++expected[c.reason];
  }
  for (const auto& [reason, count] : expected) EXPECT_EQ(Rejected(reason), count) << reason;
  EXPECT_TRUE(member_.requests().empty());
  // 100 fields is the limit, not one less: a request at it goes through.
  std::string at_limit = "GET /p HTTP/1.1\r\nHost: a\r\nConnection: close\r\n";
  for (int i = 0; i < 98; ++i) at_limit += "b: x\r\n";
  EXPECT_TRUE(Send(at_limit + "\r\n").starts_with("HTTP/1.1 200 OK\r\n"));
}

TEST_F(FramingTest, AHostTheOperatorDidNotListIsMisdirected) {
  proxy_.reset();
  config_.hosts = {"shop.example", "*.cdn.example"};
  StartProxy(1);
  for (const char* host : {"shop.example", "SHOP.EXAMPLE:80", "img.cdn.example"}) {
    const std::string got = Send("GET /p HTTP/1.1\r\nHost: " + std::string(host) + "\r\nConnection: close\r\n\r\n");
    EXPECT_TRUE(got.starts_with("HTTP/1.1 200 OK\r\n")) << host << got;
  }
  for (const char* host : {"evil.example", "shop.example:8080", "cdn.example"}) {
    const std::string got = Send("GET /p HTTP/1.1\r\nHost: " + std::string(host) + "\r\n\r\n");
    EXPECT_TRUE(got.starts_with("HTTP/1.1 421 Misdirected Request\r\n")) << host << got;
  }
  // Absolute-form: the target's authority is the Host that counts.
  std::string got = Send("GET http://evil.example/p HTTP/1.1\r\nHost: shop.example\r\n\r\n");
  EXPECT_TRUE(got.starts_with("HTTP/1.1 421 ")) << got;
  EXPECT_EQ(Rejected("misdirected"), 4);
  EXPECT_EQ(member_.requests().size(), 3u);
}

// What reaches the member about where the request came from is the
// balancer's own: Host as received, X-Forwarded-Host from it, the scheme
// it saw, and none of the routing overrides a client may send.
TEST_F(FramingTest, ForwardingFieldsAreSetByTheBalancerAlone) {
  const std::string got = Send(
      "GET /p HTTP/1.1\r\nHost: shop.example\r\nX-Forwarded-Host: evil.example\r\nX-Forwarded-Proto: https\r\n"
      "X-Forwarded-Scheme: https\r\nX-Original-URL: /admin\r\nX-HTTP-Method-Override: DELETE\r\n"
      "Forwarded: host=evil.example\r\nX-Real-IP: 6.6.6.6\r\nConnection: close\r\n\r\n");
  ASSERT_TRUE(got.starts_with("HTTP/1.1 200 OK\r\n")) << got;
  const auto requests = member_.requests();
  ASSERT_EQ(requests.size(), 1u);
  for (const char* leaked : {"evil", "/admin", "DELETE", "6.6.6.6", "X-Forwarded-Scheme", "Forwarded:"}) {
    EXPECT_EQ(requests[0].find(leaked), std::string::npos) << leaked << " in:\n" << requests[0];
  }
  const auto req = ParseRequest(requests[0]);
  EXPECT_EQ(req["X-Forwarded-Host"], "shop.example");
  EXPECT_EQ(req["X-Forwarded-Proto"], "http");
  EXPECT_EQ(req.count("X-Forwarded-Proto"), 1u);
}

// Beast 1.81 bounds neither a chunk-size line nor the trailer section: the
// balancer does, at 4 KiB and --max-header-bytes.
TEST_F(FramingTest, ChunkLinesAndTrailersAreBounded) {
  const std::string head = "POST /in HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
  std::string got = Send(head + "1;" + std::string(8192, 'a'));
  EXPECT_TRUE(got.starts_with("HTTP/1.1 400 Bad Request\r\n")) << got;
  EXPECT_NE(got.find("chunk-size line too long"), std::string::npos) << got;
  // After a first chunk, in the streamed part of a large body too.
  got = Send(head + "3\r\nabc\r\n1;" + std::string(8192, 'a'));
  EXPECT_TRUE(got.starts_with("HTTP/1.1 400 Bad Request\r\n")) << got;
  got = Send(head + "11170\r\n" + std::string(70000, 'z') + "\r\n1;" + std::string(8192, 'a'), 300ms, head.size() + 70010);
  EXPECT_NE(got.find("HTTP/1.1 400 Bad Request\r\n"), std::string::npos) << got.substr(0, 200);
  EXPECT_EQ(Rejected("chunk_line_too_long"), 3);
  std::string trailer = "0\r\n";
  while (trailer.size() < 20000) trailer += "X-T: " + std::string(100, 't') + "\r\n";
  got = Send(head + "3\r\nabc\r\n" + trailer);
  EXPECT_TRUE(got.starts_with("HTTP/1.1 400 Bad Request\r\n")) << got;
  EXPECT_EQ(Rejected("trailer_too_large"), 1);
  // Within the bounds: a 4000-byte extension and a 10 KiB trailer go through (without it).
  got = Send("POST /in HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3;" +
             std::string(4000, 'e') + "\r\nabc\r\n0\r\nX-T: " + std::string(10000, 't') + "\r\n\r\n");
  EXPECT_TRUE(got.starts_with("HTTP/1.1 200 OK\r\n")) << got;
  const auto requests = member_.requests();
  ASSERT_EQ(requests.size(), 1u);  // (the streamed one never ended: the member saw no whole request)
  EXPECT_EQ(ParseRequest(requests.back()).body(), "abc");
}

long RssKiB() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.starts_with("VmRSS:")) return std::stol(line.substr(6));
  }
  return -1;
}

// An endless chunk-size line (100 MiB offered, over as many connections as
// it takes) leaves the process's memory where it was.
TEST_F(FramingTest, AnEndlessChunkLinePinsNoMemory) {
  const std::string head = "POST /in HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;";
  const std::string block(1 << 16, 'a');
  // Warm up the proxy's buffers first, so what is measured is growth.
  Send(head + std::string(8192, 'a'));
  const long before = RssKiB();
  size_t offered = 0;
  int connections = 0;
  while (offered < (100u << 20) && connections < 400) {
    const int fd = testing::ConnectLoopback(proxy_->port(), 2s);
    ASSERT_GE(fd, 0);
    ++connections;
    bool open = testing::SendAll(fd, head);
    while (open && offered < (100u << 20)) {
      open = testing::SendAll(fd, block);
      if (open) offered += block.size();
    }
    ::close(fd);
  }
  const long after = RssKiB();
  EXPECT_GT(connections, 1) << "the proxy read " << offered << " bytes of one line";
  EXPECT_LT(after - before, 5 * 1024) << "RSS " << before << " -> " << after << " KiB over " << connections
                                      << " connections, " << offered << " bytes";
  EXPECT_GT(Rejected("chunk_line_too_long"), 0);
  EXPECT_TRUE(member_.requests().empty());
}

// The body has --body-timeout-ms from its header, however it trickles: each
// byte arriving well inside --request-timeout-ms does not extend it.
TEST_F(FramingTest, ATricklingBodyMeetsItsDeadline) {
  proxy_.reset();
  config_.body_timeout_ms = 500;
  StartProxy(1);
  for (const bool streamed : {false, true}) {
    const int fd = testing::ConnectLoopback(proxy_->port(), 5s);
    ASSERT_GE(fd, 0);
    const size_t length = streamed ? 200000 : 100;
    std::string head = "POST /slow HTTP/1.1\r\nHost: a\r\nContent-Length: " + std::to_string(length) + "\r\n\r\n";
    // The streamed case: 70000 bytes at once (the head goes to the member),
    // then the rest trickles.
    ASSERT_TRUE(testing::SendAll(fd, head + std::string(streamed ? 70000 : 0, 'x')));
    const auto start = std::chrono::steady_clock::now();
    std::string got;
    for (int i = 0; i < 60; ++i) {  // 3 s of a byte every 50 ms
      if (!testing::SendAll(fd, "x")) break;
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 50) > 0) {
        char buf[4096];
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n > 0) got.append(buf, static_cast<size_t>(n));
        break;
      }
    }
    const auto waited = std::chrono::steady_clock::now() - start;
    ::close(fd);
    if (!streamed) {
      EXPECT_TRUE(got.starts_with("HTTP/1.1 408 Request Timeout\r\n")) << got;
    } else {
      // The member has the head: the client's connection is cut after the
      // deadline (its answer, if any, comes with close).
      EXPECT_TRUE(got.empty() || got.find(" 408 ") != std::string::npos || got.find(" 502 ") != std::string::npos)
          << got;
    }
    EXPECT_LT(waited, 2500ms) << (streamed ? "streamed" : "buffered");
  }
  EXPECT_EQ(Rejected("body_timeout"), 2);
}

TEST_F(FramingTest, ContinueOnlyForHttp11) {
  const std::string head10 = "POST /c HTTP/1.0\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n";
  std::string got = Send(head10 + "hello", 300ms, head10.size());
  EXPECT_TRUE(got.starts_with("HTTP/1.0 200 OK\r\n")) << got;
  EXPECT_EQ(got.find("100 Continue"), std::string::npos) << got;

  const std::string head11 =
      "POST /c HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n";
  got = Send(head11 + "hello", 300ms, head11.size());
  EXPECT_TRUE(got.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")) << got;

  const auto requests = member_.requests();
  ASSERT_EQ(requests.size(), 2u);
  for (const auto& r : requests) {
    EXPECT_EQ(r.find("Expect"), std::string::npos) << r;
    EXPECT_EQ(ParseRequest(r).body(), "hello");
  }
}

}  // namespace
}  // namespace webtier::balancer
