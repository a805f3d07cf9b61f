// The webnode's http:// origin client: its answer reader fed in every cut,
// and HttpOrigin against a raw-socket origin that sends exactly the bytes a
// test scripts (keep-alive, closed connections, stray bytes, hostile framing).
#include "webtier/webnode/http_origin.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "webtier/testing/harness.h"

namespace webtier::cache {
namespace {

using namespace std::chrono_literals;
using Result = OriginResponseReader::Result;

// ---- the reader ----

struct Read {
  Result result = Result::kMore;
  bool reusable = false;
  Response response;
  std::string error;
};

Read Feed(std::string_view bytes, bool head = false, size_t cut = 0, bool eof = false, size_t max_body = 1 << 20) {
  OriginResponseReader reader(head, 1024, max_body);
  Read r;
  while (!bytes.empty() && r.result != Result::kError) {
    const size_t n = cut == 0 ? bytes.size() : std::min(cut, bytes.size());
    r.result = reader.Feed(bytes.substr(0, n));
    bytes.remove_prefix(n);
  }
  if (r.result == Result::kMore && eof) r.result = reader.Eof();
  r.reusable = reader.reusable();
  r.error = reader.error();
  if (r.result == Result::kDone) r.response = reader.TakeResponse();
  return r;
}

// Every cut from one byte at a time to whole gives the same answer.
Read FeedEveryCut(std::string_view bytes, bool head = false, bool eof = false) {
  const Read whole = Feed(bytes, head, 0, eof);
  for (size_t cut = 1; cut <= 7; ++cut) {
    const Read piece = Feed(bytes, head, cut, eof);
    EXPECT_EQ(piece.result, whole.result) << "cut " << cut;
    EXPECT_EQ(piece.response.body, whole.response.body) << "cut " << cut;
    EXPECT_EQ(piece.response.headers, whole.response.headers) << "cut " << cut;
    EXPECT_EQ(piece.reusable, whole.reusable) << "cut " << cut;
  }
  return whole;
}

TEST(OriginResponseReaderTest, ContentLengthAnswerKeepsItsEndToEndFields) {
  const Read r = FeedEveryCut(
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nCache-Control: max-age=60\r\nConnection: X-Hop\r\nX-Hop: 1\r\n"
      "Keep-Alive: timeout=5\r\n\r\nhello");
  ASSERT_EQ(r.result, Result::kDone);
  EXPECT_TRUE(r.reusable);
  EXPECT_EQ(r.response.status, 200);
  EXPECT_EQ(r.response.body, "hello");
  EXPECT_EQ(r.response.headers, (Headers{{"Cache-Control", "max-age=60"}}));
}

TEST(OriginResponseReaderTest, ChunkedBodyWithExtensionsAndTrailersIsJoinedAndTheTrailersDropped) {
  const Read r = FeedEveryCut(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
      "5;name=value\r\nhello\r\n1 \r\n,\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n");
  ASSERT_EQ(r.result, Result::kDone);
  EXPECT_TRUE(r.reusable);
  EXPECT_EQ(r.response.body, "hello, world");
  EXPECT_TRUE(r.response.headers.empty());  // Transfer-Encoding and Trailer are hop-by-hop; X-Sum came last
}

TEST(OriginResponseReaderTest, InterimAnswersAreSkippedAndTheFinalOneRead) {
  const Read r = FeedEveryCut(
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
      "HTTP/1.1 204 No Content\r\nETag: \"x\"\r\n\r\n");
  ASSERT_EQ(r.result, Result::kDone);
  EXPECT_EQ(r.response.status, 204);
  EXPECT_EQ(r.response.headers, (Headers{{"ETag", "\"x\""}}));
}

TEST(OriginResponseReaderTest, WithoutALengthTheBodyEndsAtTheCloseAndTheConnectionWithIt) {
  const std::string bytes = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the close";
  EXPECT_EQ(Feed(bytes).result, Result::kMore);
  const Read r = FeedEveryCut(bytes, false, true);
  ASSERT_EQ(r.result, Result::kDone);
  EXPECT_FALSE(r.reusable);
  EXPECT_EQ(r.response.body, "until the close");
  // A transfer coding it does not know, without chunked: to the close too,
  // the body as it came (RFC 9112 6.3), and Transfer-Encoding not kept.
  const Read unknown = FeedEveryCut(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: x-unknown\r\nContent-Length: 2\r\nETag: \"e\"\r\n\r\nraw bytes", false,
      true);
  ASSERT_EQ(unknown.result, Result::kDone);
  EXPECT_FALSE(unknown.reusable);
  EXPECT_EQ(unknown.response.body, "raw bytes");
  EXPECT_EQ(unknown.response.headers, (Headers{{"ETag", "\"e\""}}));
}

TEST(OriginResponseReaderTest, AHeadAnswerHasNoBodyAndKeepsItsLength) {
  const Read r = FeedEveryCut("HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n", true);
  ASSERT_EQ(r.result, Result::kDone);
  EXPECT_TRUE(r.reusable);
  EXPECT_EQ(r.response.headers, (Headers{{"Content-Length", "14"}}));
}

TEST(OriginResponseReaderTest, ConnectionCloseAndBytesAfterTheEndMakeTheConnectionUnusable) {
  EXPECT_FALSE(FeedEveryCut("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx").reusable);
  const Read stray = FeedEveryCut("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 200 OK\r\n");
  EXPECT_EQ(stray.result, Result::kDone);
  EXPECT_EQ(stray.response.body, "x");
  EXPECT_FALSE(stray.reusable);
  // Both framings: Transfer-Encoding reads the body, the connection is not reused.
  const Read both = FeedEveryCut(
      "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n");
  EXPECT_EQ(both.response.body, "ok");
  EXPECT_FALSE(both.reusable);
}

TEST(OriginResponseReaderTest, HostileFramingIsAnErrorAtItsBound) {
  struct Case {
    std::string name;
    std::string bytes;
  };
  const std::vector<Case> cases = {
      {"endless chunk-size line", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + std::string(10000, '1')},
      {"chunk size beyond 64 bits", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n11111111111111111\r\n"},
      {"chunk data without CRLF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxyz"},
      {"endless trailer section",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + std::string(200, 'a') + ": 1\r\n" +
           std::string(2000, 'b')},
      {"header section over the limit", "HTTP/1.1 200 OK\r\nX-Big: " + std::string(2000, 'v') + "\r\n\r\n"},
      {"endless status line", std::string("HTTP/1.1 200 ") + std::string(5000, 'O')},
      {"differing Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello!"},
      {"two Content-Length lines", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"},
      {"signed Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello"},
      {"a coding before chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"},
      {"a coding after chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n"},
      {"chunked twice", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"},
      {"chunked in HTTP/1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
      {"obsolete line folding", "HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 0\r\n\r\n"},
      {"space before the colon", "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n"},
      {"NUL in a value", std::string("HTTP/1.1 200 OK\r\nX-A: a") + '\0' + "b\r\nContent-Length: 0\r\n\r\n"},
      {"bare CR in a value", "HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n"},
      {"four-digit status", "HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n"},
      {"status below 100", "HTTP/1.1 099 Odd\r\nContent-Length: 0\r\n\r\n"},
      {"not HTTP", "SSH-2.0-OpenSSH\r\n\r\n"},
      {"switching protocols", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"},
      {"body over the limit", "HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n"},
      {"chunked body over the limit", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7d0\r\n"},
      {"empty line first", "\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"},
  };
  for (const Case& c : cases) {
    const Read r = Feed(c.bytes, false, 0, false, 1024);
    EXPECT_EQ(r.result, Result::kError) << c.name;
    EXPECT_FALSE(r.error.empty()) << c.name;
    EXPECT_EQ(Feed(c.bytes, false, 3, false, 1024).result, Result::kError) << c.name << " in cuts";
  }
  std::string interim;
  for (int i = 0; i < 9; ++i) interim += "HTTP/1.1 100 Continue\r\n\r\n";
  EXPECT_EQ(Feed(interim + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").result, Result::kError);
  // Closed early: before a byte, in the head, in the body.
  EXPECT_EQ(Feed("", false, 0, true).result, Result::kError);
  EXPECT_EQ(Feed("HTTP/1.1 200 OK\r\nContent-Len", false, 0, true).result, Result::kError);
  EXPECT_EQ(Feed("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort", false, 0, true).result, Result::kError);
}

// ---- HttpOrigin against a raw-socket origin ----

// Serves one connection at a time on a loopback port. For each request it
// reads (head, then a Content-Length body), `script(n, head)` says what to
// write (n counts requests over all connections) and whether to close after.
class RawOrigin {
 public:
  struct Reply {
    std::string bytes;
    bool close = false;
    std::chrono::milliseconds delay{0};
  };
  using Script = std::function<Reply(int, const std::string&)>;

  explicit RawOrigin(Script script) : script_(std::move(script)) {
    listen_ = webtier::testing::ListenLoopback(&port_, 16);
    thread_ = std::thread([this] { Serve(); });
  }
  ~RawOrigin() {
    stop_ = true;
    ::shutdown(listen_, SHUT_RDWR);
    if (const int c = current_.load(); c >= 0) ::shutdown(c, SHUT_RDWR);
    thread_.join();
    ::close(listen_);
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int accepted() const { return accepted_; }
  std::vector<std::string> heads() const {
    std::lock_guard<std::mutex> lock(mu_);
    return heads_;
  }

 private:
  void Serve() {
    int n = 0;
    while (!stop_) {
      const int c = ::accept4(listen_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      ++accepted_;
      current_ = c;
      std::string in;
      for (bool open = true; open && !stop_;) {
        std::string head;
        if (!ReadRequest(c, &in, &head)) break;
        {
          std::lock_guard<std::mutex> lock(mu_);
          heads_.push_back(head);
        }
        const Reply reply = script_(n++, head);
        if (reply.delay.count() > 0) std::this_thread::sleep_for(reply.delay);
        if (!reply.bytes.empty()) (void)!::send(c, reply.bytes.data(), reply.bytes.size(), MSG_NOSIGNAL);
        open = !reply.close;
      }
      current_ = -1;
      ::close(c);
    }
  }
  static bool ReadRequest(int c, std::string* in, std::string* head) {
    size_t end;
    while ((end = in->find("\r\n\r\n")) == std::string::npos) {
      char buf[4096];
      const ssize_t r = ::recv(c, buf, sizeof(buf), 0);
      if (r <= 0) return false;
      in->append(buf, static_cast<size_t>(r));
    }
    *head = in->substr(0, end + 4);
    size_t body = 0;
    if (const size_t at = head->find("Content-Length: "); at != std::string::npos) body = std::stoul(head->substr(at + 16));
    while (in->size() < end + 4 + body) {
      char buf[4096];
      const ssize_t r = ::recv(c, buf, sizeof(buf), 0);
      if (r <= 0) return false;
      in->append(buf, static_cast<size_t>(r));
    }
    *head = in->substr(0, end + 4 + body);
    in->erase(0, end + 4 + body);
    return true;
  }

  Script script_;
  int listen_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> current_{-1};
  std::atomic<int> accepted_{0};
  mutable std::mutex mu_;
  std::vector<std::string> heads_;
  std::thread thread_;
};

std::string Ok(std::string_view body, std::string_view extra = "") {
  return "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" + std::string(extra) + "\r\n" +
         std::string(body);
}

Request Get(std::string path, std::string query = "") {
  Request r;
  r.path = std::move(path);
  r.query = std::move(query);
  return r;
}

TEST(HttpOriginTest, OneConnectionCarriesRequestAfterRequest) {
  RawOrigin upstream([](int n, const std::string&) { return RawOrigin::Reply{Ok("answer " + std::to_string(n))}; });
  HttpOrigin origin(HttpOriginOptions{upstream.url()});
  for (int i = 0; i < 20; ++i) {
    Response resp;
    ASSERT_TRUE(origin.Fetch(Get("/k"), &resp).ok());
    EXPECT_EQ(resp.body, "answer " + std::to_string(i));
  }
  EXPECT_EQ(upstream.accepted(), 1);
}

TEST(HttpOriginTest, TheRequestLineHostAndFieldsAreTheOnesTheOriginShouldSee) {
  RawOrigin upstream([](int, const std::string&) { return RawOrigin::Reply{Ok("x")}; });
  HttpOrigin origin(HttpOriginOptions{upstream.url() + "/base/"});
  Request post = Get("/submit", "a=1&b=%20");
  post.method = "POST";
  post.body = "payload";
  post.headers = {{"Accept", "*/*"},     {"Connection", "close, X-Hop"}, {"X-Hop", "1"},
                  {"Expect", "100-continue"}, {"Content-Length", "999"},       {"Transfer-Encoding", "chunked"}};
  Response resp;
  ASSERT_TRUE(origin.Fetch(post, &resp).ok());
  const auto heads = upstream.heads();
  ASSERT_EQ(heads.size(), 1u);
  EXPECT_EQ(heads[0], "POST /base/submit?a=1&b=%20 HTTP/1.1\r\nAccept: */*\r\nHost: 127.0.0.1:" +
                          upstream.url().substr(17) + "\r\nContent-Length: 7\r\n\r\npayload");
}

TEST(HttpOriginTest, RequestsThatCannotGoOnTheWireAreRefusedUnsent) {
  RawOrigin upstream([](int, const std::string&) { return RawOrigin::Reply{Ok("x")}; });
  HttpOrigin origin(HttpOriginOptions{upstream.url()});
  Response resp;
  EXPECT_EQ(origin.Fetch(Get("/a b"), &resp).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(origin.Fetch(Get("/a", "x#y"), &resp).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(origin.Fetch(Get("relative"), &resp).code(), ErrorCode::kInvalidArgument);
  Request injected = Get("/a");
  injected.headers = {{"X-A", "1\r\nX-Injected: 1"}};
  EXPECT_EQ(origin.Fetch(injected, &resp).code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(upstream.heads().empty());
  HttpOrigin userinfo(HttpOriginOptions{"http://user@127.0.0.1:1"});
  EXPECT_FALSE(HttpOrigin::Handles("http://user@127.0.0.1:1"));
  EXPECT_EQ(userinfo.Fetch(Get("/a"), &resp).code(), ErrorCode::kInvalidArgument);
}

TEST(HttpOriginTest, AConnectionTheOriginClosedAsTheRequestWentOutIsRetriedOnce) {
  // Request 1 is read and the connection closed unanswered, as an origin
  // whose keep-alive timeout ran out at that moment does.
  RawOrigin upstream([](int n, const std::string&) {
    if (n == 1) return RawOrigin::Reply{"", true};
    return RawOrigin::Reply{Ok("answer " + std::to_string(n))};
  });
  HttpOrigin origin(HttpOriginOptions{upstream.url()});
  Response resp;
  ASSERT_TRUE(origin.Fetch(Get("/k"), &resp).ok());
  const Status second = origin.Fetch(Get("/k"), &resp);
  ASSERT_TRUE(second.ok()) << second.ToString();
  EXPECT_EQ(resp.body, "answer 2");
  EXPECT_EQ(upstream.accepted(), 2);
}

TEST(HttpOriginTest, AnIdleConnectionTheOriginClosedIsNotUsed) {
  RawOrigin upstream([](int n, const std::string&) {
    return RawOrigin::Reply{Ok("answer " + std::to_string(n)), n == 0};  // closes after its first answer
  });
  HttpOrigin origin(HttpOriginOptions{upstream.url()});
  Response resp;
  ASSERT_TRUE(origin.Fetch(Get("/k"), &resp).ok());  // pooled: the answer allowed keep-alive
  ASSERT_TRUE(origin.Fetch(Get("/k"), &resp).ok());  // the peek sees the close: a new connection
  EXPECT_EQ(resp.body, "answer 1");
  EXPECT_EQ(upstream.accepted(), 2);
  EXPECT_EQ(upstream.heads().size(), 2u);  // nothing was sent on the closed one
}

TEST(HttpOriginTest, BytesAfterAnAnswerNeverReachTheNextRequest) {
  RawOrigin upstream([](int n, const std::string&) {
    if (n == 0) return RawOrigin::Reply{Ok("first") + Ok("forged")};
    return RawOrigin::Reply{Ok("answer " + std::to_string(n))};
  });
  HttpOrigin origin(HttpOriginOptions{upstream.url()});
  Response resp;
  ASSERT_TRUE(origin.Fetch(Get("/a"), &resp).ok());
  EXPECT_EQ(resp.body, "first");
  ASSERT_TRUE(origin.Fetch(Get("/b"), &resp).ok());
  EXPECT_EQ(resp.body, "answer 1");
  EXPECT_EQ(upstream.accepted(), 2);
}

TEST(HttpOriginTest, HostileAnswersFailTheFetchWithoutWaitingForTheTimeout) {
  const std::vector<std::string> answers = {
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + std::string(1 << 20, '1'),
      "HTTP/1.1 200 OK\r\nX-Big: " + std::string(1 << 20, 'v'),
      "HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\nabcd",
      "HTTP/1.1 101 Switching Protocols\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",  // then the close
  };
  for (const std::string& bytes : answers) {
    RawOrigin upstream([&](int, const std::string&) { return RawOrigin::Reply{bytes, true}; });
    HttpOriginOptions options{upstream.url()};
    options.timeout = 30s;
    HttpOrigin origin(options);
    Response resp;
    const Status s = origin.Fetch(Get("/h"), &resp);
    EXPECT_EQ(s.code(), ErrorCode::kUnavailable) << bytes.substr(0, 60) << ": " << s.ToString();
  }
  RawOrigin big([](int, const std::string&) { return RawOrigin::Reply{Ok(std::string(5000, 'b'))}; });
  HttpOriginOptions options{big.url()};
  options.max_body_bytes = 4096;
  HttpOrigin limited(options);
  Response resp;
  EXPECT_EQ(limited.Fetch(Get("/big"), &resp).code(), ErrorCode::kUnavailable);
}

TEST(HttpOriginTest, AnOriginThatStallsMidAnswerIsATimeout) {
  RawOrigin upstream([](int, const std::string&) {
    return RawOrigin::Reply{"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf", false};
  });
  HttpOriginOptions options{upstream.url()};
  options.timeout = 300ms;
  HttpOrigin origin(options);
  Response resp;
  EXPECT_EQ(origin.Fetch(Get("/stall"), &resp).code(), ErrorCode::kTimeout);
}

}  // namespace
}  // namespace webtier::cache
