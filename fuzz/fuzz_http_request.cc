// Fuzzes what the balancer does with client bytes before any member sees
// them: Beast's request parser under the proxy's limits, the framing checks
// (smuggling, request-target forms), the origin-form rewrite, the admin-path check, the dropping of
// trailer fields, and the head serialized for the member, which must parse
// back to the same request, with one valid traceparent.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <iterator>
#include <optional>
#include <string>

#include <boost/beast/http.hpp>

#include "webtier/balancer/http/admin_path.h"
#include "webtier/balancer/http/http_rules.h"
#include "webtier/common/http_syntax.h"

namespace http = boost::beast::http;

namespace {

// Whether the header has a Transfer-Encoding field.
bool HasTransferEncoding(const http::request_header<>& h) { return h.count(http::field::transfer_encoding) != 0; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using webtier::balancer::CheckRequestFraming;
  http::request_parser<http::string_body> parser;
  parser.header_limit(16 * 1024);
  parser.body_limit(64 * 1024);
  boost::beast::error_code ec;
  size_t used = 0;
  // The header first, as the proxy reads it (not eager), then the body.
  while (used < size) {
    size_t n = parser.put(boost::asio::buffer(data + used, size - used), ec);
    if (ec == http::error::need_more) {
      ec = {};
      break;
    }
    if (ec || n == 0) break;
    used += n;
    if (parser.is_header_done()) break;
  }
  if (ec || !parser.is_header_done()) return 0;
  const webtier::balancer::RequestCheck check = CheckRequestFraming(parser.get(), 100);
  if (!check.ok()) {
    if (check.why.empty()) __builtin_trap();  // every refusal says why
    return 0;
  }
  // An accepted head has at most 100 field lines and a Host that is an authority.
  if (std::distance(parser.get().begin(), parser.get().end()) > 100) __builtin_trap();
  {
    const auto host = parser.get()[http::field::host];
    const std::string_view h(host.data(), host.size());
    if (!webtier::balancer::IsValidHost(h)) __builtin_trap();
    for (const bool tls : {false, true}) {
      // Normalising is stable, keeps the value a Host, and the allow-list of
      // that one name admits it.
      const std::string normal = webtier::balancer::NormalizeHost(h, tls);
      if (!webtier::balancer::IsValidHost(normal)) __builtin_trap();
      if (webtier::balancer::NormalizeHost(normal, tls) != normal) __builtin_trap();
      if (!normal.empty() && !normal.starts_with("*.") && !webtier::balancer::HostAllowList({normal}).Admits(h, false) &&
          !tls)
        __builtin_trap();
    }
    if (h.find_first_of(" \t/@?#\\") != std::string_view::npos) __builtin_trap();
  }
  // An accepted Transfer-Encoding is exactly chunked: Beast must read it so.
  if (HasTransferEncoding(parser.get()) != parser.chunked()) __builtin_trap();
  webtier::balancer::ToOriginForm(parser.get());
  {
    const auto target = parser.get().target();
    if (!(target.starts_with('/') || target == "*")) __builtin_trap();
    // The admin-route check the public listener applies: the plain spelling
    // (no dot segment or escape that could lead elsewhere) is always caught.
    const std::string_view path(target.data(), target.size());
    const bool admin = webtier::balancer::IsAdminPath(path);
    const bool plain = path.find_first_of(".%") == std::string_view::npos;
    if (plain && (path.starts_with("/admin/") || path == "/admin") && !admin) __builtin_trap();
  }
  if (!CheckRequestFraming(parser.get()).ok()) __builtin_trap();
  webtier::balancer::HeaderFields header_fields;
  header_fields.Snapshot(parser.get());
  const size_t header_count = std::distance(parser.get().begin(), parser.get().end());
  parser.eager(true);
  // The body as the proxy reads it: in pieces, what the parser holds back
  // bounded after each (PendingBodyError), so no chunk line or trailer grows
  // past its limit however the bytes are cut.
  constexpr size_t kTrailerLimit = 1024;
  std::string pending;
  size_t piece = 1 + (size > 0 ? data[0] % 97 : 0);
  while (used < size && !parser.is_done()) {
    const size_t take = std::min(piece, size - used);
    pending.append(reinterpret_cast<const char*>(data + used), take);
    used += take;
    piece = piece * 3 % 211 + 1;
    size_t n = parser.put(boost::asio::buffer(pending), ec);
    pending.erase(0, n);
    if (ec == http::error::need_more) {
      ec = {};
      if (webtier::balancer::PendingBodyError(pending, kTrailerLimit)) return 0;
      if (pending.size() > webtier::balancer::kMaxChunkLineBytes + kTrailerLimit + 4) __builtin_trap();
      continue;
    }
    if (ec) break;
  }
  while (!ec && !parser.is_done() && !pending.empty()) {
    const size_t n = parser.put(boost::asio::buffer(pending), ec);
    if (n == 0) break;
    pending.erase(0, n);
  }
  if (ec || !parser.is_done()) return 0;
  header_fields.DropTrailers(parser.get());
  // Trailers are gone, every header field is still there.
  if (static_cast<size_t>(std::distance(parser.get().begin(), parser.get().end())) != header_count) __builtin_trap();
  auto req = parser.release();
  // What goes to the member must parse back to one whole request with the
  // same method, target and body: anything else would be a smuggling vector.
  // Three ways out: the body whole, streamed with its length, streamed chunked.
  const std::string& body = req.body();
  char size_line[24];
  const int size_len = std::snprintf(size_line, sizeof size_line, "%zx\r\n", body.size());
  const std::string chunked_body =
      body.empty() ? "0\r\n\r\n" : std::string(size_line, static_cast<size_t>(size_len)) + body + "\r\n0\r\n\r\n";
  const webtier::balancer::UpstreamBody framings[] = {{}, {true, body.size()}, {true, std::nullopt}};
  for (const auto& framing : framings) {
    std::string head;
    webtier::balancer::SerializeUpstreamRequest(req, "127.0.0.1", "0123456789abcdef0123456789abcdef", head, framing);
    http::request_parser<http::string_body> back;
    back.header_limit(64 * 1024);
    back.body_limit(64 * 1024);
    back.eager(true);
    const std::string raw = head + (framing.streamed && !framing.length ? chunked_body : body);
    const size_t n = back.put(boost::asio::buffer(raw), ec);
    if (ec || n != raw.size() || !back.is_done()) __builtin_trap();
    const auto& out = back.get();
    if (out.method_string() != req.method_string() || out.target() != req.target() || out.body() != body)
      __builtin_trap();
    if (!CheckRequestFraming(out).ok()) __builtin_trap();
  }
  // The trace context: exactly one valid traceparent goes on, in the trace
  // of the client's valid one, else in the new one with no tracestate.
  {
    webtier::RequestTrace trace;
    webtier::NewTrace(&trace);
    const std::string fresh(trace.trace_id, webtier::kTraceIdLength);
    std::string head;
    webtier::balancer::SerializeUpstreamRequest(req, "127.0.0.1", "rid", head, {}, false, {}, false, &trace);
    http::request_parser<http::string_body> back;
    back.header_limit(64 * 1024);
    back.body_limit(64 * 1024);
    back.eager(true);
    const std::string raw = head + body;
    back.put(boost::asio::buffer(raw), ec);
    if (ec || !back.is_done()) __builtin_trap();
    if (back.get().count("traceparent") != 1) __builtin_trap();
    const auto sent = back.get()["traceparent"];
    const auto parsed = webtier::ParseTraceparent(std::string_view(sent.data(), sent.size()));
    if (!parsed || parsed->trace_id != trace.trace_view()) __builtin_trap();
    if (!trace.continued && (trace.trace_view() != fresh || back.get().count("tracestate") != 0)) __builtin_trap();
  }
  // Whatever a client sends as a traceparent: a valid one is lower-case hex
  // of the right lengths.
  for (const auto& f : req) {
    if (!webtier::http_syntax::EqualsIgnoreCase(f.name_string(), "traceparent")) continue;
    const auto p = webtier::ParseTraceparent(std::string_view(f.value().data(), f.value().size()));
    if (p && (p->trace_id.size() != 32 || p->parent_id.size() != 16 ||
              p->trace_id.find_first_not_of("0123456789abcdef") != std::string_view::npos ||
              p->parent_id.find_first_not_of("0123456789abcdef") != std::string_view::npos))
      __builtin_trap();
  }
  return 0;
}
