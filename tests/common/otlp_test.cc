// OTLP/HTTP JSON: the encoding, the endpoint, and what happens to spans when
// the collector is away.
#include "webtier/common/otlp.h"

#include <gtest/gtest.h>

#include <atomic>

#include <nlohmann/json.hpp>

#include "webtier/testing/harness.h"

namespace webtier::otlp {
namespace {

using nlohmann::json;

TEST(OtlpEndpoint, PlainHttpWithAHostAndAnOptionalPath) {
  net::HostPort address;
  std::string path;
  ASSERT_TRUE(ParseEndpoint("http://collector:4318", &address, &path).ok());
  EXPECT_EQ(address.host, "collector");
  EXPECT_EQ(address.port, 4318);
  EXPECT_EQ(path, "/v1/traces");
  ASSERT_TRUE(ParseEndpoint("http://127.0.0.1:9999/otlp/v1/traces", &address, &path).ok());
  EXPECT_EQ(address.port, 9999);
  EXPECT_EQ(path, "/otlp/v1/traces");
  ASSERT_TRUE(ParseEndpoint("http://[::1]/", &address, &path).ok());
  EXPECT_EQ(address.port, 4318);
  EXPECT_EQ(path, "/v1/traces");
  for (const char* bad : {"https://collector:4318", "collector:4318", "http://", "http:///v1/traces",
                          "http://c:99999", "http://c/a b"}) {
    EXPECT_FALSE(ParseEndpoint(bad, &address, &path).ok()) << bad;
  }
}

TEST(OtlpJson, AnExportTraceServiceRequest) {
  Span root;
  root.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  root.span_id = "00f067aa0ba902b7";
  root.name = "GET";
  root.start = std::chrono::system_clock::time_point(std::chrono::nanoseconds(1'700'000'000'123'456'789));
  root.end = root.start + std::chrono::milliseconds(5);
  root.attributes = {{"http.response.status_code", int64_t{503}}, {"url.path", std::string("/a")},
                     {"ratio", 0.5}, {"retried", true}};
  root.events = {{root.start, "attempt", {{"webtier.member", std::string("n1")}}}};
  root.error = true;
  Span child = root;
  child.span_id = "b7ad6b7169203331";
  child.parent_span_id = root.span_id;
  child.kind = SpanKind::kClient;
  child.events.clear();
  child.error = false;
  const json j = json::parse(EncodeJson("svc", {root, child}));
  const json& rs = j["resourceSpans"][0];
  EXPECT_EQ(rs["resource"]["attributes"][0], (json{{"key", "service.name"}, {"value", {{"stringValue", "svc"}}}}));
  const json& spans = rs["scopeSpans"][0]["spans"];
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(spans[0]["traceId"], root.trace_id);
  EXPECT_FALSE(spans[0].contains("parentSpanId"));  // a root span
  EXPECT_EQ(spans[0]["kind"], 2);
  EXPECT_EQ(spans[0]["startTimeUnixNano"], "1700000000123456789");  // 64-bit integers as strings
  EXPECT_EQ(spans[0]["endTimeUnixNano"], "1700000000128456789");
  EXPECT_EQ(spans[0]["attributes"][0]["value"], (json{{"intValue", "503"}}));
  EXPECT_EQ(spans[0]["attributes"][1]["value"], (json{{"stringValue", "/a"}}));
  EXPECT_EQ(spans[0]["attributes"][2]["value"], (json{{"doubleValue", 0.5}}));
  EXPECT_EQ(spans[0]["attributes"][3]["value"], (json{{"boolValue", true}}));
  EXPECT_EQ(spans[0]["status"]["code"], 2);
  EXPECT_EQ(spans[0]["events"][0]["name"], "attempt");
  EXPECT_EQ(spans[1]["parentSpanId"], root.span_id);
  EXPECT_EQ(spans[1]["kind"], 3);
  EXPECT_EQ(spans[1]["status"]["code"], 0);
  EXPECT_FALSE(spans[1].contains("events"));
}

// Nobody listens: every span is dropped and counted, at the queue (beyond
// max_queue) or with its failed batch; Export never waits for the network.
TEST(OtlpExporter, ACollectorThatIsAwayCostsDroppedSpansNotTime) {
  std::atomic<uint64_t> exported{0}, dropped{0};
  const uint16_t closed = testing::FreePort();
  Exporter::Options options{.endpoint = "http://127.0.0.1:" + std::to_string(closed),
                            .service = "test",
                            .max_queue = 10,
                            .batch = 4,
                            .interval = std::chrono::milliseconds(50),
                            .timeout = std::chrono::milliseconds(500)};
  options.on_result = [&](uint64_t e, uint64_t d) {
    exported += e;
    dropped += d;
  };
  std::unique_ptr<Exporter> exporter;
  ASSERT_TRUE(Exporter::Create(options, &exporter).ok());
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 25; ++i) exporter->Export(Span{.trace_id = "t", .span_id = "s", .name = "x"});
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(100));
  exporter->Flush();
  EXPECT_EQ(exported.load(), 0u);
  EXPECT_EQ(dropped.load(), 25u);
}

}  // namespace
}  // namespace webtier::otlp
