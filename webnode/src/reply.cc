// Reply: one pending response, with X-Served-By and request metrics.
#include "webtier/webnode/reply.h"

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

void Reply::Send(int status, std::string body, std::string_view content_type) {
  if (sent_ || !writer_) return;
  sent_ = true;
  auto& headers = writer_->headers();
  if (served_by_ != nullptr) SetHeader(headers, "X-Served-By", *served_by_);
  if (!content_type.empty()) SetHeader(headers, "Content-Type", std::string(content_type));
  for (auto& [name, value] : headers_) SetHeader(headers, std::move(name), std::move(value));
  if (method_ == "HEAD") body.clear();
  writer_->send(static_cast<Code>(status), body);
  if (metrics_ != nullptr) {
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    metrics_->Record(route_, method_, status, secs);
    metrics_->inflight().Decrement();
  }
}

}  // namespace webtier::webnode
