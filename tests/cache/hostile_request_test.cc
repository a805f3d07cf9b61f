// Hostile request heads against a real webnode in front of an origin: request
// targets that would make the node fetch from another host (SSRF), and heads
// with thousands of fields.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <future>
#include <memory>

#include "reflect_origin.h"
#include "webtier/testing/harness.h"

namespace webtier::cache {
namespace {

using namespace std::chrono_literals;
using namespace webtier::testing;
using webtier::cache::testing::ReflectOrigin;
using webtier::cache::testing::Victim;

// Sends `raw` on a fresh connection and returns everything read until the
// node closes or 3 s pass.
std::string Exchange(uint16_t port, const std::string& raw) {
  int fd = ConnectLoopback(port, 3s);
  if (fd < 0) return "connect failed";
  SendAll(fd, raw);
  std::string got;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) got.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return got;
}

std::unique_ptr<Webnode> NodeFor(const ReflectOrigin& origin, std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"--origin", origin.url()};
  args.insert(args.end(), extra.begin(), extra.end());
  auto node = std::make_unique<Webnode>("hostile", "127.0.0.1:" + std::to_string(FreePort()), args);
  node->WaitHealthy();
  return node;
}

TEST(HostileRequestTest, TargetsThatNameAnotherHostNeverReachIt) {
  ReflectOrigin origin;
  Victim victim;
  auto node = NodeFor(origin);
  const std::string v = "127.0.0.1:" + std::to_string(victim.port());
  const std::vector<std::string> attacks = {
      "@" + v + "/x",           "//" + v + "/x",          "http://" + v + "/x",  "https://" + v + "/x",
      "\\\\" + v + "\\x",       "/\\" + v + "/x",         "%40" + v + "/x",      ":@" + v + "/x",
      "x@" + v + "/x",          v + "/x",                 v,                     "*",
      "/x#@" + v,               "/%zz@" + v};
  for (const std::string& target : attacks) {
    for (const char* method : {"GET", "POST"}) {
      std::string got = Exchange(node->port(), std::string(method) + " " + target +
                                                    " HTTP/1.1\r\nHost: www.example\r\nContent-Length: 0\r\n"
                                                    "Connection: close\r\n\r\n");
      EXPECT_EQ(got.rfind("HTTP/1.1 400", 0), 0u) << method << " " << target << ": " << got;
    }
  }
  // Origin-form targets that merely spell another host stay paths on the origin.
  for (const std::string& target : {"/%2F%2F" + v + "/x", "/@" + v + "/x", "/x?u=http://" + v + "/"}) {
    std::string got = Exchange(node->port(), "GET " + target + " HTTP/1.1\r\nHost: www.example\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(got.rfind("HTTP/1.1 200", 0), 0u) << target << ": " << got;
    // As sent, but for the case of percent-encoded hex digits (libcurl writes them in lower case).
    std::string lower = got, want = "GET " + target + " HTTP/1.1";
    for (std::string* t : {&lower, &want}) {
      for (char& c : *t) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    EXPECT_NE(lower.find(want), std::string::npos) << "the origin got it as sent: " << got;
  }
  // OPTIONS * is about the server: answered by the node itself.
  std::string options = Exchange(node->port(), "OPTIONS * HTTP/1.1\r\nHost: www.example\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(options.rfind("HTTP/1.1 200", 0), 0u) << options;
  EXPECT_NE(options.find("Allow: "), std::string::npos) << options;
  EXPECT_EQ(victim.connections(), 0) << "a request target reached another host";
  for (const auto& line : origin.request_lines()) EXPECT_EQ(line.rfind("GET /", 0), 0u) << line;
  EXPECT_EQ(MetricValue(node->Metrics(), "webnode_http_refused_total", {{"reason", "bad_target"}}),
            static_cast<double>(attacks.size() * 2));
}

TEST(HostileRequestTest, ThousandsOfFieldsAre431AndOthersAreStillServed) {
  ReflectOrigin origin;
  auto node = NodeFor(origin);
  // About 20 KiB: 1500 fields, then a Connection line with 1500 tokens.
  std::string head = "GET /many HTTP/1.1\r\nHost: www.example\r\n";
  for (int i = 0; i < 1500; ++i) head += "X-F" + std::to_string(i) + ": v\r\n";
  head += "Connection: keep-alive";
  for (int i = 0; i < 1500; ++i) head += ", X-F" + std::to_string(i);
  head += "\r\n\r\n";
  ASSERT_GT(head.size(), 20000u);
  // Meanwhile other connections keep being served.
  std::atomic<bool> done{false};
  auto others = std::async(std::launch::async, [&] {
    int ok = 0, failed = 0;
    while (!done.load()) {
      (HttpRequest("GET", node->url("/ok"), {"Host: www.example"}, "", 2s).status == 200 ? ok : failed)++;
    }
    return std::make_pair(ok, failed);
  });
  for (int round = 0; round < 20; ++round) {
    std::string got = Exchange(node->port(), head);
    ASSERT_EQ(got.rfind("HTTP/1.1 431", 0), 0u) << got.substr(0, 200);
    EXPECT_NE(got.find("Connection: close"), std::string::npos) << got.substr(0, 400);
  }
  // The same head arriving a few bytes at a time.
  {
    int fd = ConnectLoopback(node->port(), 3s);
    for (size_t i = 0; i < head.size(); i += 64) {
      if (!SendAll(fd, head.substr(i, 64))) break;
    }
    std::string got;
    char buf[4096];
    ssize_t n;
    while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) got.append(buf, static_cast<size_t>(n));
    ::close(fd);
    EXPECT_EQ(got.rfind("HTTP/1.1 431", 0), 0u) << got.substr(0, 200);
  }
  done = true;
  auto [ok, failed] = others.get();
  EXPECT_GT(ok, 0);
  EXPECT_EQ(failed, 0);
  // At the limit is fine; the limit is a flag.
  std::string hundred = "GET /hundred HTTP/1.1\r\nHost: www.example\r\nConnection: close\r\n";
  for (int i = 0; i < 98; ++i) hundred += "X-F" + std::to_string(i) + ": v\r\n";
  EXPECT_EQ(Exchange(node->port(), hundred + "\r\n").rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_EQ(Exchange(node->port(), hundred + "X-One-More: v\r\n\r\n").rfind("HTTP/1.1 431", 0), 0u);
  EXPECT_EQ(MetricValue(node->Metrics(), "webnode_http_refused_total", {{"reason", "too_many_fields"}}), 22.0);
  auto strict = NodeFor(origin, {"--max-header-fields", "3"});
  EXPECT_EQ(Exchange(strict->port(), "GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 2\r\nConnection: close\r\n\r\n")
                .rfind("HTTP/1.1 431", 0),
            0u);
}

}  // namespace
}  // namespace webtier::cache
