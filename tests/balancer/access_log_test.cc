// Unit tests of the W3C trace context rules, the request id and trace fields
// a member gets, the access log's line formats, and its writer: rotation,
// a stalled reader, drops.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "webtier/balancer/telemetry/access_log.h"
#include "webtier/balancer/http/http_rules.h"
#include "webtier/common/http_syntax.h"
#include "webtier/common/trace_context.h"
#include "webtier/testing/harness.h"

namespace webtier::balancer {
namespace {

namespace http = boost::beast::http;
using namespace std::chrono_literals;
using testing::WaitFor;

constexpr const char* kTrace = "4bf92f3577b34da6a3ce929d0e0e4736";
constexpr const char* kParent = "00f067aa0ba902b7";

TEST(ParseTraceparent, TakesVersion00AndLaterVersionsByTheirPrefix) {
  const std::string valid = std::string("00-") + kTrace + "-" + kParent + "-01";
  auto p = ParseTraceparent(valid);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->trace_id, kTrace);
  EXPECT_EQ(p->parent_id, kParent);
  EXPECT_TRUE(p->sampled);
  EXPECT_FALSE(ParseTraceparent(std::string("00-") + kTrace + "-" + kParent + "-00")->sampled);
  EXPECT_TRUE(ParseTraceparent(std::string("00-") + kTrace + "-" + kParent + "-03")->sampled);
  // A later version: the version 00 fields, then nothing or '-' and more.
  EXPECT_TRUE(ParseTraceparent(std::string("cc-") + kTrace + "-" + kParent + "-01"));
  EXPECT_TRUE(ParseTraceparent(std::string("cc-") + kTrace + "-" + kParent + "-01-what-comes-next"));
  EXPECT_FALSE(ParseTraceparent(std::string("cc-") + kTrace + "-" + kParent + "-01what"));
}

TEST(ParseTraceparent, RefusesEverythingTheStandardCallsInvalid) {
  const std::string t = kTrace, p = kParent;
  for (const std::string& bad : {
           std::string(""),
           "ff-" + t + "-" + p + "-01",                                   // version ff
           "00-" + t + "-" + p + "-01-extra",                             // version 00 with more
           "00-" + t + "-" + p + "-1",                                    // short flags
           "00-" + std::string(32, '0') + "-" + p + "-01",                // all-zero trace id
           "00-" + t + "-" + std::string(16, '0') + "-01",                // all-zero parent id
           "00-4BF92F3577B34DA6A3CE929D0E0E4736-" + p + "-01",            // upper case
           "00-" + t + "-" + p + "-0G",                                   // not hex
           "00_" + t + "-" + p + "-01",                                   // separator
           "0-" + t + "-" + p + "-01",                                    // short version
           "00-" + t.substr(1) + "-" + p + "-01",                         // short trace id
           " 00-" + t + "-" + p + "-01",                                  // leading space (OWS is stripped by the parser)
       }) {
    EXPECT_FALSE(ParseTraceparent(bad)) << bad;
  }
}

http::request<http::string_body> Request(const std::string& raw) {
  http::request_parser<http::string_body> p;
  boost::beast::error_code ec;
  p.eager(true);
  p.put(boost::asio::buffer(raw), ec);
  EXPECT_TRUE(p.is_header_done()) << ec.message();
  return p.release();
}

// The fields named `name` in a serialized head, in order.
std::vector<std::string> Fields(const std::string& head, const std::string& name) {
  std::vector<std::string> out;
  std::istringstream in(head);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    if (webtier::http_syntax::EqualsIgnoreCase(line.substr(0, colon), name)) out.push_back(line.substr(colon + 2));
  }
  return out;
}

TEST(SerializeUpstreamRequest, ContinuesAValidTraceWithTheBalancersSpanAndItsState) {
  const std::string parent = std::string("00-") + kTrace + "-" + kParent + "-01";
  auto req = Request("GET / HTTP/1.1\r\nHost: a\r\ntraceparent: " + parent +
                     "\r\ntracestate: vendor=1\r\nTracestate: other=2\r\n\r\n");
  RequestTrace trace;
  NewTrace(&trace);
  const std::string span(trace.span_id, kSpanIdLength);
  std::string out;
  SerializeUpstreamRequest(req, "10.0.0.1", "rid", out, {}, false, {}, false, &trace);
  EXPECT_TRUE(trace.continued);
  EXPECT_EQ(trace.trace_view(), kTrace);
  EXPECT_EQ(Fields(out, "traceparent"), std::vector<std::string>{std::string("00-") + kTrace + "-" + span + "-01"});
  EXPECT_EQ(Fields(out, "tracestate"), (std::vector<std::string>{"vendor=1", "other=2"}));
}

TEST(SerializeUpstreamRequest, StartsANewTraceForAMissingInvalidOrRepeatedTraceparent) {
  const std::string valid = std::string("00-") + kTrace + "-" + kParent + "-01";
  for (const std::string& fields : {std::string("tracestate: vendor=1\r\n"),
                                    "traceparent: 00-" + std::string(kTrace) + "-xyz-01\r\ntracestate: vendor=1\r\n",
                                    "traceparent: " + valid + "\r\ntraceparent: " + valid + "\r\n"}) {
    auto req = Request("GET / HTTP/1.1\r\nHost: a\r\n" + fields + "\r\n");
    RequestTrace trace;
    NewTrace(&trace);
    const std::string fresh(trace.trace_id, kTraceIdLength), span(trace.span_id, kSpanIdLength);
    std::string out;
    SerializeUpstreamRequest(req, "10.0.0.1", "rid", out, {}, false, {}, false, &trace);
    EXPECT_FALSE(trace.continued) << fields;
    EXPECT_EQ(trace.trace_view(), fresh);
    EXPECT_NE(fresh, kTrace);
    EXPECT_EQ(Fields(out, "traceparent"), std::vector<std::string>{"00-" + fresh + "-" + span + "-00"}) << out;
    EXPECT_TRUE(Fields(out, "tracestate").empty()) << "state without a valid parent goes nowhere: " << out;
  }
}

TEST(SerializeUpstreamRequest, AClientRequestIdIsKeptOrReplacedAsConfigured) {
  auto req = Request("GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: client-id\r\n\r\n");
  std::string out;
  EXPECT_EQ(SerializeUpstreamRequest(req, "10.0.0.1", "new-id", out), "client-id");
  EXPECT_EQ(Fields(out, "x-request-id"), std::vector<std::string>{"client-id"});
  EXPECT_EQ(SerializeUpstreamRequest(req, "10.0.0.1", "new-id", out, {}, false, {}, /*replace=*/true), "new-id");
  EXPECT_EQ(Fields(out, "x-request-id"), std::vector<std::string>{"new-id"});
}

TEST(NewTrace, IdsAreLowerHexNonZeroAndDiffer) {
  RequestTrace a, b;
  NewTrace(&a);
  NewTrace(&b);
  const std::string line = std::string("00-") + std::string(a.trace_id, kTraceIdLength) + "-" +
                           std::string(a.span_id, kSpanIdLength) + "-00";
  EXPECT_TRUE(ParseTraceparent(line)) << line;
  EXPECT_NE(std::string(a.trace_id, kTraceIdLength), std::string(b.trace_id, kTraceIdLength));
}

TEST(ChildOf, ContinuesTheParentsTraceWithANewSpanOrStartsOne) {
  const std::string header = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  const RequestTrace child = ChildOf(ParseTraceparent(header));
  EXPECT_EQ(child.trace_view(), "0af7651916cd43dd8448eb211c80319c");
  EXPECT_EQ(std::string_view(child.parent_id, kSpanIdLength), "b7ad6b7169203331");
  EXPECT_TRUE(child.continued);
  EXPECT_TRUE(child.sampled);
  const std::string value = TraceparentValue(child);
  const auto parsed = ParseTraceparent(value);
  ASSERT_TRUE(parsed) << value;
  EXPECT_EQ(parsed->trace_id, "0af7651916cd43dd8448eb211c80319c");
  EXPECT_NE(parsed->parent_id, "b7ad6b7169203331") << "the child's own span";
  EXPECT_TRUE(parsed->sampled);
  std::string line;
  AppendTraceparent(child, line);
  EXPECT_EQ(line, "traceparent: " + value + "\r\n");

  const RequestTrace root = ChildOf(std::nullopt);
  EXPECT_FALSE(root.continued);
  EXPECT_FALSE(root.sampled);
  EXPECT_NE(root.trace_view(), child.trace_view());
  EXPECT_EQ(TraceparentValue(root).substr(TraceparentValue(root).size() - 3), "-00");
}

AccessRecord Sample() {
  AccessRecord r;
  r.time = std::chrono::system_clock::time_point(std::chrono::milliseconds(1764944768123));
  r.client = "192.0.2.7";
  r.protocol = "HTTP/1.1";
  r.method = "GET";
  r.authority = "example.com";
  r.path = "/a?b=c";
  r.status = 502;
  r.bytes_in = 78;
  r.bytes_out = 140;
  r.duration_ms = 12.5;
  r.connect_ms = 0.25;
  r.member = "node-1";
  r.member_addr = "127.0.0.1:8001";
  r.attempts = 3;
  r.flags = kConnectFailed | kMemberTimeout;
  r.request_id = "rid";
  r.trace_id = kTrace;
  r.user_agent = "curl/7.88";
  return r;
}

TEST(FormatAccessLine, JsonCarriesEveryFieldWithNullsForWhatDidNotHappen) {
  std::string line;
  FormatAccessLine(Sample(), AccessLogFormat::kJson, line);
  ASSERT_EQ(line.back(), '\n');
  const auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["time"], "2025-12-05T14:26:08.123Z");
  EXPECT_EQ(j["client"], "192.0.2.7");
  EXPECT_EQ(j["protocol"], "HTTP/1.1");
  EXPECT_EQ(j["tls"], false);
  EXPECT_EQ(j["method"], "GET");
  EXPECT_EQ(j["authority"], "example.com");
  EXPECT_EQ(j["path"], "/a?b=c");
  EXPECT_EQ(j["status"], 502);
  EXPECT_EQ(j["bytes_in"], 78);
  EXPECT_EQ(j["bytes_out"], 140);
  EXPECT_DOUBLE_EQ(j["duration_ms"].get<double>(), 12.5);
  EXPECT_DOUBLE_EQ(j["connect_ms"].get<double>(), 0.25);
  EXPECT_TRUE(j["upstream_ms"].is_null());
  EXPECT_EQ(j["member"], "node-1");
  EXPECT_EQ(j["member_addr"], "127.0.0.1:8001");
  EXPECT_EQ(j["attempts"], 3);
  EXPECT_EQ(j["flags"], nlohmann::json::array({"connect_failed", "member_timeout"}));
  EXPECT_EQ(j["request_id"], "rid");
  EXPECT_EQ(j["trace_id"], kTrace);
  EXPECT_EQ(j["user_agent"], "curl/7.88");
  EXPECT_TRUE(j["cache"].is_null());
  EXPECT_EQ(j.size(), 21u);
}

TEST(FormatAccessLine, HostileBytesLeaveOneValidLine) {
  AccessRecord r = Sample();
  const std::string agent = std::string("a\"b\\c\x01\x7f\xff\xc3\xa9 \n{") + std::string(1, '\0') + "end";
  r.user_agent = agent;
  std::string line;
  FormatAccessLine(r, AccessLogFormat::kJson, line);
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  const auto j = nlohmann::json::parse(line);  // throws on invalid JSON or UTF-8
  EXPECT_EQ(j["user_agent"].get<std::string>().size(), agent.size() + 3 /* three bytes >= 0x80 become 2 each */);
  line.clear();
  FormatAccessLine(r, AccessLogFormat::kText, line);
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  for (char c : line.substr(0, line.size() - 1)) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << int(c);
  EXPECT_NE(line.find(R"(user_agent="a\"b\\c\x01\x7f\xff\xc3\xa9 \x0a{\x00end")"), std::string::npos) << line;
}

TEST(FormatAccessLine, TextIsLogfmtWithDashForWhatDidNotHappen) {
  std::string line;
  FormatAccessLine(Sample(), AccessLogFormat::kText, line);
  EXPECT_EQ(line,
            "time=2025-12-05T14:26:08.123Z client=192.0.2.7 protocol=HTTP/1.1 tls=false method=GET "
            "authority=example.com path=\"/a?b=c\" status=502 bytes_in=78 bytes_out=140 duration_ms=12.500 "
            "connect_ms=0.250 upstream_ms=- member=node-1 member_addr=127.0.0.1:8001 attempts=3 "
            "flags=connect_failed,member_timeout request_id=rid trace_id=4bf92f3577b34da6a3ce929d0e0e4736 "
            "user_agent=curl/7.88 cache=-\n");
}

std::vector<nlohmann::json> ReadLines(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

class AccessLogTest : public ::testing::Test {
 protected:
  testing::TempDir tmp_{"access-log"};
  const std::string dir_ = tmp_.path();
};

TEST_F(AccessLogTest, EveryWorkersLinesAreWrittenAcrossARenameAndReopen) {
  const std::string path = dir_ + "/access.log";
  std::unique_ptr<AccessLog> log;
  // Lines come far faster than any worker makes them: a bound that never drops.
  ASSERT_TRUE(AccessLog::Open({.path = path, .shard_bytes = size_t{1} << 30, .flush_interval = 5ms}, nullptr, &log).ok());
  constexpr int kWorkers = 2, kLines = 20000;
  std::vector<std::thread> workers;
  std::atomic<int> rotated{0};
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&, w] {
      AccessLog::Shard* shard = log->NewShard();
      for (int i = 0; i < kLines; ++i) {
        AccessRecord r = Sample();
        const std::string id = std::to_string(w) + "-" + std::to_string(i);
        r.request_id = id;
        log->Log(shard, r);
        if (i % 1000 == 0) std::this_thread::sleep_for(1ms);  // the shards stay far below their bound
      }
    });
  }
  // logrotate's way: rename, then SIGUSR1 (Reopen), while lines keep coming.
  std::this_thread::sleep_for(20ms);
  std::filesystem::rename(path, path + ".1");
  log->Reopen();
  ++rotated;
  for (auto& t : workers) t.join();
  log->FlushForTest();
  const AccessLog::Counts counts = log->counts();
  log.reset();
  auto before = ReadLines(path + ".1"), after = ReadLines(path);
  EXPECT_GT(before.size(), 0u);
  EXPECT_GT(after.size(), 0u) << "nothing went to the reopened file";
  std::set<std::string> ids;
  for (const auto* lines : {&before, &after}) {
    for (const auto& j : *lines) ids.insert(j["request_id"].get<std::string>());
  }
  EXPECT_EQ(ids.size(), static_cast<size_t>(kWorkers * kLines)) << "lines lost or repeated";
  EXPECT_EQ(before.size() + after.size(), static_cast<size_t>(kWorkers * kLines));
  EXPECT_EQ(counts.written, static_cast<uint64_t>(kWorkers * kLines));
  EXPECT_EQ(counts.dropped, 0u);
  EXPECT_EQ(counts.reopens, 1u);
}

TEST_F(AccessLogTest, AStalledReaderNeverBlocksAWorkerAndDropsAreCounted) {
  const std::string fifo = dir_ + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const int reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);  // there, but never reads
  ASSERT_GE(reader, 0);
  std::unique_ptr<AccessLog> log;
  ASSERT_TRUE(AccessLog::Open({.path = fifo, .shard_bytes = 64 * 1024}, nullptr, &log).ok());
  AccessLog::Shard* shard = log->NewShard();
  constexpr int kLines = 100000;  // ~40 MB of lines against a 64 KiB pipe and a 64 KiB shard
  std::atomic<bool> done{false};
  std::thread worker([&] {
    for (int i = 0; i < kLines; ++i) log->Log(shard, Sample());
    done = true;
  });
  const bool finished = WaitFor([&] { return done.load(); }, 60s);
  worker.join();
  EXPECT_TRUE(finished) << "a worker waited for the stalled reader";
  // The writer is stuck in the full pipe: it cannot count its batch yet.
  // Reading frees it; then every line is either written or counted dropped.
  std::atomic<bool> stop_reading{false};
  std::thread reading([&] {
    char buf[65536];
    while (!stop_reading) {
      if (::read(reader, buf, sizeof buf) <= 0) std::this_thread::sleep_for(1ms);
    }
  });
  log->FlushForTest();
  const AccessLog::Counts counts = log->counts();
  log.reset();
  stop_reading = true;
  reading.join();
  ::close(reader);
  EXPECT_GT(counts.dropped, 0u);
  EXPECT_EQ(counts.written + counts.dropped, static_cast<uint64_t>(kLines));
}

TEST_F(AccessLogTest, SamplingKeepsEveryErrorAndAShareOfSuccesses) {
  const std::string path = dir_ + "/sampled.log";
  std::unique_ptr<AccessLog> log;
  ASSERT_TRUE(AccessLog::Open({.path = path, .sample = 0.1, .shard_bytes = size_t{1} << 30}, nullptr, &log).ok());
  AccessLog::Shard* shard = log->NewShard();
  AccessRecord ok = Sample(), error = Sample(), flagged = Sample();
  ok.status = 200;
  ok.flags = 0;
  error.flags = 0;  // a 502 alone
  flagged.status = 200;  // retried: a flag, so logged whatever its status
  flagged.flags = kMember5xx;
  for (int i = 0; i < 10000; ++i) {
    log->Log(shard, ok);
    log->Log(shard, error);
    log->Log(shard, flagged);
  }
  log->FlushForTest();
  log.reset();
  std::map<int, int> by_status;
  int flagged_lines = 0;
  for (const auto& j : ReadLines(path)) {
    if (!j["flags"].empty()) ++flagged_lines;
    else ++by_status[j["status"].get<int>()];
  }
  EXPECT_EQ(by_status[502], 10000);
  EXPECT_EQ(flagged_lines, 10000);
  EXPECT_GT(by_status[200], 700);  // 1000 expected
  EXPECT_LT(by_status[200], 1300);
}

}  // namespace
}  // namespace webtier::balancer
