// Reply: one pending response, with X-Served-By and request metrics.
#include "webtier/webnode/reply.h"

#include <pistache/peer.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <optional>
#include <sstream>
#include <string_view>

#include "webtier/cache/http_date.h"
#include "webtier/common/log.h"
#include "webtier/common/otlp.h"
#include "webtier/cache/message.h"
#include "webtier/webnode/http_metrics.h"
#include "webtier/webnode/peer_socket.h"

namespace webtier::webnode {

using Pistache::Http::Code;

Reply::Reply(Pistache::Http::ResponseWriter writer, std::string_view method, HttpMetrics* metrics,
             const std::string* served_by)
    : writer_(std::make_unique<Pistache::Http::ResponseWriter>(std::move(writer))),
      method_(method),
      metrics_(metrics),
      served_by_(served_by),
      start_(std::chrono::steady_clock::now()) {
  if (std::shared_ptr<Pistache::Tcp::Peer> peer = writer_->getPeer()) socket_ = PeerSocket::Of(peer);
  if (socket_) turn_ = socket_->TakeTurn();
  if (metrics_ != nullptr) metrics_->inflight().Increment();
}

Reply::Reply(Reply&& other) noexcept
    : writer_(std::move(other.writer_)),
      socket_(std::move(other.socket_)),
      turn_(other.turn_),
      method_(std::move(other.method_)),
      metrics_(other.metrics_),
      served_by_(other.served_by_),
      route_(std::move(other.route_)),
      headers_(std::move(other.headers_)),
      start_(other.start_),
      sent_(other.sent_),
      trace_(std::move(other.trace_)) {
  other.sent_ = true;  // the moved-from shell must not answer or count
}

Reply::~Reply() {
  if (!sent_ && writer_) Send(500, R"({"error":"internal error: request dropped"})");
}

namespace {

// Several lines of one field become one line (RFC 9110 5.3), in order:
// Pistache keeps one header per name.
std::vector<std::pair<std::string, std::string>> Combined(std::vector<std::pair<std::string, std::string>> in) {
  std::vector<std::pair<std::string, std::string>> out;
  for (auto& [name, value] : in) {
    // An init-capture: clang before 16 cannot capture a structured binding.
    auto same = std::find_if(out.begin(), out.end(),
                             [&field = name](const auto& o) { return cache::EqualsIgnoreCase(o.first, field); });
    if (same == out.end() || cache::EqualsIgnoreCase(name, "Set-Cookie")) {
      out.emplace_back(std::move(name), std::move(value));
    } else {
      same->second += ", " + value;
    }
  }
  return out;
}

void AppendField(std::string* out, std::string_view name, std::string_view value) {
  out->append(name).append(": ").append(value).append("\r\n");
}

// The current time as an HTTP-date, formatted once per second per thread.
const std::string& Now() {
  thread_local std::time_t second = 0;
  thread_local std::string formatted;
  const std::time_t now = std::time(nullptr);
  if (now != second) {
    second = now;
    formatted = cache::FormatHttpDate(now);
  }
  return formatted;
}

// Pistache's own header collection holds only what NodeHandler::onInput
// set on the writer: in practice Connection alone. True when that says close.
bool AppendPistacheHeaders(const Pistache::Http::Header::Collection& headers, std::string* out) {
  bool close = false;
  for (const auto& h : headers.list()) {
    if (const auto* c = dynamic_cast<const Pistache::Http::Header::Connection*>(h.get())) {
      // Ext (the client named other tokens, e.g. Upgrade): nothing to say;
      // Pistache would write the word "Ext".
      if (c->control() == Pistache::Http::ConnectionControl::Ext) continue;
      close = c->control() == Pistache::Http::ConnectionControl::Close;
      AppendField(out, "Connection", close ? "close" : "keep-alive");
    } else {
      std::ostringstream value;
      h->write(value);
      AppendField(out, h->name(), value.str());
    }
  }
  return close;
}

}  // namespace

void Reply::Send(int status, std::string body, std::string_view content_type) {
  if (sent_ || !writer_) return;
  sent_ = true;
  // The whole answer is written here, in one buffer, straight to the peer:
  // Pistache's send() goes through its header map and an ostream per field,
  // and always writes a Content-Length equal to the body it sends (wrong for
  // HEAD, forbidden for 204 and 304).
  const bool head = method_ == "HEAD";
  const bool bodyless = status == 204 || status == 304 || status < 200;
  std::string out;
  out.reserve(320 + (head || bodyless ? 0 : body.size()));
  out += "HTTP/1.1 ";
  out += std::to_string(status);
  out += ' ';
  out += Pistache::Http::codeString(static_cast<Code>(status));
  out += "\r\n";
  bool dated = false, typed = false, served = false, connection = false, close = false;
  std::string x_cache, cache_status;  // for the log lines only
  std::optional<size_t> head_length;  // an origin's answer to a HEAD: the length of what a GET would get
  for (auto& [name, value] : Combined(std::move(headers_))) {
    if (cache::EqualsIgnoreCase(name, "Content-Length")) {  // framing is written below
      size_t n = 0;
      if (head && body.empty() && std::sscanf(value.c_str(), "%zu", &n) == 1) head_length = n;
      continue;
    }
    if (trace_ && cache::EqualsIgnoreCase(name, "X-Cache")) x_cache = value;
    if (trace_ && cache::EqualsIgnoreCase(name, "Cache-Status")) cache_status = value;
    dated = dated || cache::EqualsIgnoreCase(name, "Date");
    typed = typed || cache::EqualsIgnoreCase(name, "Content-Type");
    served = served || cache::EqualsIgnoreCase(name, "X-Served-By");
    if (cache::EqualsIgnoreCase(name, "Connection")) {
      connection = true;
      close = close || cache::EqualsIgnoreCase(value, "close");
    }
    AppendField(&out, name, value);
  }
  if (!served && served_by_ != nullptr) AppendField(&out, "X-Served-By", *served_by_);
  if (!typed && !content_type.empty()) AppendField(&out, "Content-Type", content_type);
  if (!dated) AppendField(&out, "Date", Now());
  if (!connection) close = AppendPistacheHeaders(writer_->headers(), &out);
  if (!bodyless) AppendField(&out, "Content-Length", std::to_string(head ? head_length.value_or(body.size()) : body.size()));
  out += "\r\n";
  if (!head && !bodyless) out += body;
  if (std::shared_ptr<Pistache::Tcp::Peer> peer = writer_->getPeer()) peer->setIdle(true);
  // "Connection: close" is a promise to close (RFC 9112 9.6), which Pistache
  // does not keep: once the answer is out, our half of the connection ends.
  // Only the write side: the client reads the answer and the EOF, then
  // closes, and Pistache lets go of the connection on that EOF (shutting the
  // read side too would turn bytes the client already sent into a reset that
  // can destroy the answer before it is read). Whatever else arrives on it
  // meanwhile is dropped by NodeHandler.
  const size_t bytes = out.size();
  if (socket_) {
    if (!socket_->Write(turn_, std::move(out), close)) {
      log::Warn("http", "client pipelines requests and reads no answer: connection shut")
          .kv("max_answers", PeerSocket::kMaxQueuedAnswers)
          .kv("max_bytes", PeerSocket::kMaxQueuedBytes);
      if (metrics_ != nullptr) metrics_->Refused("unread_answers");
    }
    socket_.reset();
  }
  if (trace_) LogRequest(status, bytes, x_cache, cache_status);
  if (metrics_ != nullptr) {
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    metrics_->Record(route_, method_, status, secs);
    metrics_->inflight().Decrement();
  }
}

void Reply::set_trace(Trace trace) { trace_ = std::make_unique<Trace>(std::move(trace)); }

void Reply::LogRequest(int status, size_t bytes, std::string_view x_cache, std::string_view cache_status) const {
  if (!cache_status.empty() || !x_cache.empty()) {
    log::Debug("cache", "decision")
        .kv("path", trace_->path)
        .kv("x_cache", x_cache)
        .kv("cache_status", cache_status)
        .kv("request_id", trace_->request_id)
        .kv("trace_id", trace_->trace_id);
  }
  if (trace_->spans != nullptr) {
    otlp::Span span;
    span.trace_id = trace_->trace_id;
    span.span_id = trace_->span_id;
    span.parent_span_id = trace_->parent_id;
    span.kind = otlp::SpanKind::kServer;
    span.name = method_ + " " + route_;
    span.end = std::chrono::system_clock::now();
    span.start = span.end - std::chrono::duration_cast<std::chrono::system_clock::duration>(
                                std::chrono::steady_clock::now() - start_);
    span.attributes = {{"http.request.method", method_},
                       {"url.path", trace_->path},
                       {"server.address", trace_->host},
                       {"http.route", route_},
                       {"http.response.status_code", static_cast<int64_t>(status)},
                       {"webtier.request_id", trace_->request_id}};
    if (served_by_ != nullptr) span.attributes.push_back({"webtier.node", *served_by_});
    if (!x_cache.empty()) span.attributes.push_back({"webtier.cache", std::string(x_cache)});
    if (!cache_status.empty()) span.attributes.push_back({"webtier.cache_status", std::string(cache_status)});
    span.error = status >= 500;
    trace_->spans->Export(std::move(span));
  }
  if (!trace_->access) return;
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_).count();
  log::Info("access", "request")
      .kv("method", method_)
      .kv("host", trace_->host)
      .kv("path", trace_->path)
      .kv("status", status)
      .kv("bytes_out", bytes)
      .kv("duration_ms", ms)
      .kv("route", route_)
      .kv("cache", x_cache)
      .kv("request_id", trace_->request_id)
      .kv("trace_id", trace_->trace_id);
}

}  // namespace webtier::webnode
