// Reply: one pending response, with X-Served-By and request metrics.
#include "webtier/webnode/reply.h"

#include <pistache/peer.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <optional>
#include <sstream>

#include "webtier/cache/http_date.h"
#include "webtier/cache/message.h"
#include "webtier/webnode/http_metrics.h"
#include "webtier/webnode/text_header.h"

namespace webtier::webnode {

using Pistache::Http::Code;

Reply::Reply(Pistache::Http::ResponseWriter writer, std::string_view method, HttpMetrics* metrics,
             const std::string* served_by)
    : writer_(std::make_unique<Pistache::Http::ResponseWriter>(std::move(writer))),
      method_(method),
      metrics_(metrics),
      served_by_(served_by),
      start_(std::chrono::steady_clock::now()) {
  if (metrics_ != nullptr) metrics_->inflight().Increment();
}

Reply::Reply(Reply&& other) noexcept
    : writer_(std::move(other.writer_)),
      method_(std::move(other.method_)),
      metrics_(other.metrics_),
      served_by_(other.served_by_),
      route_(std::move(other.route_)),
      headers_(std::move(other.headers_)),
      start_(other.start_),
      sent_(other.sent_) {
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
    auto same = std::find_if(out.begin(), out.end(), [&](const auto& o) { return cache::EqualsIgnoreCase(o.first, name); });
    if (same == out.end() || cache::EqualsIgnoreCase(name, "Set-Cookie")) {
      out.emplace_back(std::move(name), std::move(value));
    } else {
      same->second += ", " + value;
    }
  }
  return out;
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

}  // namespace

void Reply::SendWithoutBody(int status, std::optional<size_t> content_length) {
  std::shared_ptr<Pistache::Tcp::Peer> peer = writer_->getPeer();
  if (!peer) return;
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + Pistache::Http::codeString(static_cast<Code>(status)) + "\r\n";
  for (const auto& h : writer_->headers().list()) {
    std::ostringstream value;
    h->write(value);
    out += h->name();
    out += ": ";
    out += value.str();
    out += "\r\n";
  }
  if (content_length.has_value()) out += "Content-Length: " + std::to_string(*content_length) + "\r\n";
  out += "\r\n";
  peer->setIdle(true);
  const size_t size = out.size();
  peer->send(Pistache::RawBuffer(std::move(out), size));
}

void Reply::Send(int status, std::string body, std::string_view content_type) {
  if (sent_ || !writer_) return;
  sent_ = true;
  auto& headers = writer_->headers();
  if (served_by_ != nullptr) SetHeader(headers, "X-Served-By", *served_by_);
  if (!content_type.empty()) SetHeader(headers, "Content-Type", std::string(content_type));
  bool dated = false;
  std::optional<size_t> head_length;  // an origin's answer to a HEAD: the length of what a GET would get
  for (auto& [name, value] : Combined(std::move(headers_))) {
    dated = dated || cache::EqualsIgnoreCase(name, "Date");
    if (cache::EqualsIgnoreCase(name, "Content-Length")) {  // framing is Pistache's to write
      size_t n = 0;
      if (method_ == "HEAD" && body.empty() && std::sscanf(value.c_str(), "%zu", &n) == 1) head_length = n;
      continue;
    }
    // Names are unique after Combined(); only the ones set above (or by
    // Pistache) need replacing, the rest skip a lookup in Pistache's map.
    if (cache::EqualsIgnoreCase(name, "X-Served-By") || cache::EqualsIgnoreCase(name, "Content-Type") ||
        cache::EqualsIgnoreCase(name, "Connection")) {
      SetHeader(headers, std::move(name), std::move(value));
    } else {
      headers.add(std::make_shared<TextHeader>(std::move(name), std::move(value)));
    }
  }
  if (!dated) SetHeader(headers, "Date", Now());
  // Pistache writes Content-Length from the body it sends: a HEAD answer must
  // carry the GET's length without the body, and 204/304 none at all.
  if (method_ == "HEAD" || status == 204 || status == 304 || status < 200) {
    SendWithoutBody(status, method_ == "HEAD" && status != 204 && status != 304
                                ? std::optional<size_t>(head_length.value_or(body.size()))
                                : std::nullopt);
  } else {
    writer_->send(static_cast<Code>(status), body);
  }
  if (metrics_ != nullptr) {
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    metrics_->Record(route_, method_, status, secs);
    metrics_->inflight().Decrement();
  }
}

}  // namespace webtier::webnode
