// Spans exported as OTLP/HTTP JSON: the OpenTelemetry protocol's JSON
// encoding of an ExportTraceServiceRequest, POSTed to a collector's
// /v1/traces (--otlp-endpoint in both programs). Debian 12 packages no
// OpenTelemetry SDK; the encoding is part of the protocol's specification.
//
// Export() never blocks the caller: spans wait in a bounded queue that one
// thread sends in batches (at most one second old, or `batch` spans). When
// the collector is slow or away, the queue fills and new spans are dropped
// and counted; a failed POST's spans are dropped and counted too, not
// retried (the next batch is sent on time).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "webtier/common/mutex.h"
#include "webtier/common/net.h"
#include "webtier/common/status.h"

namespace webtier::otlp {

struct Attribute {
  std::string key;
  std::variant<std::string, int64_t, double, bool> value;
};

struct Event {
  std::chrono::system_clock::time_point time;
  std::string name;
  std::vector<Attribute> attributes;
};

enum class SpanKind { kInternal = 1, kServer = 2, kClient = 3 };

struct Span {
  std::string trace_id;        // 32 lower-case hex digits
  std::string span_id;         // 16 lower-case hex digits
  std::string parent_span_id;  // 16 lower-case hex digits; empty for a root span
  std::string name;
  SpanKind kind = SpanKind::kServer;
  std::chrono::system_clock::time_point start;
  std::chrono::system_clock::time_point end;
  std::vector<Attribute> attributes;
  std::vector<Event> events;
  bool error = false;  // status code ERROR (else UNSET)
};

// The ExportTraceServiceRequest for `spans` of one service, as JSON.
std::string EncodeJson(std::string_view service, const std::vector<Span>& spans);

// "http://host:port[/path]": the collector's address and the path to POST
// to (default /v1/traces). Only plain HTTP: a collector is a local agent or
// a sidecar; TLS to a remote one is that agent's job.
Status ParseEndpoint(std::string_view url, net::HostPort* address, std::string* path);

class Exporter {
 public:
  struct Options {
    std::string endpoint;  // as ParseEndpoint takes it
    std::string service;   // resource attribute service.name
    size_t max_queue = 8192;
    size_t batch = 512;
    std::chrono::milliseconds interval{1000};
    std::chrono::milliseconds timeout{2000};  // connect + send + answer, per batch
    // Called on the exporter's thread after each batch and for each drop at
    // the queue: spans sent (answered 2xx) and dropped.
    std::function<void(uint64_t exported, uint64_t dropped)> on_result;
  };

  static Status Create(Options options, std::unique_ptr<Exporter>* out);
  ~Exporter();  // sends what is queued (one more try), then stops
  Exporter(const Exporter&) = delete;
  Exporter& operator=(const Exporter&) = delete;

  // Thread-safe; never blocks on the network.
  void Export(Span span) WEBTIER_EXCLUDES(mu_);
  // Sends everything queued now and waits for it (tests).
  void Flush() WEBTIER_EXCLUDES(mu_);

 private:
  Exporter(Options options, net::HostPort address, std::string path);
  void Run() WEBTIER_EXCLUDES(mu_);
  // POSTs one batch; true on a 2xx answer within the timeout.
  bool Post(const std::string& body) WEBTIER_EXCLUDES(mu_);
  void Count(uint64_t exported, uint64_t dropped) WEBTIER_EXCLUDES(mu_);

  const Options options_;
  const net::HostPort address_;
  const std::string path_;
  Mutex mu_;
  CondVar wake_;
  CondVar flushed_;
  std::vector<Span> queue_ WEBTIER_GUARDED_BY(mu_);
  uint64_t dropped_ WEBTIER_GUARDED_BY(mu_) = 0;    // at the queue, not yet reported
  uint64_t requested_ WEBTIER_GUARDED_BY(mu_) = 0;  // Flush() calls
  uint64_t completed_ WEBTIER_GUARDED_BY(mu_) = 0;  // flushes done
  bool stop_ WEBTIER_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace webtier::otlp
