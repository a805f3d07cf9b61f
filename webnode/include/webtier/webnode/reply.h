// One pending HTTP response of the webnode. It owns the Pistache
// ResponseWriter, stamps X-Served-By, and records the request's metrics
// (webnode_http_requests_total, _duration_seconds, inflight) when sent.
#pragma once

#include <pistache/http.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace webtier::otlp {
class Exporter;
}

namespace webtier::webnode {

class HttpMetrics;
class PeerSocket;

// Move-only. Construct on the reactor thread that read the request; Send
// exactly once, from any thread: the answer is written through the
// connection's own PeerSocket, never through Pistache's queue (which names
// connections by descriptor number; see peer_socket.h).
// Destroying an unsent Reply answers 500 so no request is ever left hanging.
class Reply {
 public:
  Reply(Pistache::Http::ResponseWriter writer, std::string_view method, HttpMetrics* metrics,
        const std::string* served_by);
  Reply(Reply&&) noexcept;
  Reply& operator=(Reply&&) = delete;
  Reply(const Reply&) = delete;
  ~Reply();

  // Metric label for the route, e.g. "/api/primes" (set before Send; default "other").
  void set_route(std::string_view route) { route_ = route; }
  // What a request's log lines and span say about it.
  struct Trace {
    std::string host, path, request_id;
    std::string trace_id;   // from traceparent ("" when none or malformed), or a new one with a span
    std::string parent_id;  // the caller's span ("" when none)
    std::string span_id;    // this node's span (only with `spans`)
    bool access = false;    // an info line (component=access) once sent
    otlp::Exporter* spans = nullptr;  // a span (kind server) once sent
  };
  // Turns on this request's lines and span: the access line, the cache
  // decision at the debug level (component=cache), and the span. Each names
  // the path, X-Request-Id and trace id.
  void set_trace(Trace trace);
  // Adds a response header (raw name/value, e.g. "Cache-Control", "max-age=60").
  void AddHeader(std::string name, std::string value) { headers_.emplace_back(std::move(name), std::move(value)); }
  // Sends status, the added headers (several with one name joined into one
  // line), a Date unless one was added, Content-Type and body. HEAD requests get
  // no body but the body's Content-Length (or, with no body, the Content-Length
  // header added: an origin's own answer to a HEAD); 204 and 304 neither. An
  // added Content-Length is never written as such: the framing is Send's.
  void Send(int status, std::string body, std::string_view content_type = "application/json");

  bool sent() const { return sent_; }

 private:
  std::unique_ptr<Pistache::Http::ResponseWriter> writer_;
  std::shared_ptr<PeerSocket> socket_;  // null: no client to answer
  uint64_t turn_ = 0;                   // this answer's place on the connection
  std::string method_;
  HttpMetrics* metrics_;
  const std::string* served_by_;
  std::string route_ = "other";
  std::vector<std::pair<std::string, std::string>> headers_;
  std::chrono::steady_clock::time_point start_;
  bool sent_ = false;
  std::unique_ptr<Trace> trace_;  // null: no per-request line or span
  void LogRequest(int status, size_t bytes, std::string_view x_cache, std::string_view cache_status) const;
};

}  // namespace webtier::webnode
