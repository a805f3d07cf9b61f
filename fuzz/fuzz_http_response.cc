// Fuzzes what the balancer does with a member's answer: Beast's response
// parser under the proxy's bounds (a head of at most 64 KiB; then the body in
// small pieces, as the relay reads it, with the chunk-size line and the
// trailer section bounded by PendingBodyError), the framing check, and the
// trailer section passed on to the client, which must hold no field a
// trailer may not carry and must parse back to the same fields.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <boost/beast/http.hpp>

#include "webtier/balancer/http/http_rules.h"
#include "webtier/common/http_syntax.h"

namespace http = boost::beast::http;

namespace {

constexpr size_t kTrailerLimit = 1024;  // small, so the fuzzer reaches it
constexpr size_t kPiece = 64;           // the relay's body buffer, scaled down

bool Barred(std::string_view name) {
  using webtier::http_syntax::EqualsIgnoreCase;
  for (std::string_view b : {"content-length", "transfer-encoding", "host", "connection", "keep-alive", "te",
                             "trailer", "upgrade", "set-cookie", "cache-control", "content-type", "x-request-id",
                             "cache-status"}) {
    if (EqualsIgnoreCase(name, b)) return true;
  }
  return name.size() >= 6 && EqualsIgnoreCase(name.substr(0, 6), "proxy-");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  http::response_parser<http::buffer_body> parser;
  parser.header_limit(64 * 1024);
  parser.body_limit(boost::none);
  boost::beast::error_code ec;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  // The head, as the exchange reads it.
  while (!in.empty() && !parser.is_header_done()) {
    const size_t n = parser.put(boost::asio::buffer(in.data(), in.size()), ec);
    if (ec || n == 0) break;
    in.remove_prefix(n);
  }
  if (ec || !parser.is_header_done()) return 0;
  if (!webtier::balancer::CheckResponseFraming(parser.get()).ok()) return 0;
  const bool chunked = parser.chunked();
  webtier::balancer::HeaderFields header;
  header.Snapshot(parser.get());
  // The body, as ReadBodyPiece reads it: an eager parser, small pieces, the
  // bytes held back bounded.
  parser.eager(true);
  char piece[kPiece];
  while (!parser.is_done()) {
    parser.get().body().data = piece;
    parser.get().body().size = kPiece;
    const size_t n = in.empty() ? 0 : parser.put(boost::asio::buffer(in.data(), in.size()), ec);
    in.remove_prefix(n);
    if (ec == http::error::need_buffer) {
      ec = {};
      continue;
    }
    if (ec == http::error::need_more || (!ec && n == 0)) {
      ec = {};
      if (webtier::balancer::PendingBodyError(in, kTrailerLimit)) return 0;
      // What the parser holds back stays within the documented bound.
      if (in.size() > webtier::balancer::kMaxChunkLineBytes + kTrailerLimit + 4) __builtin_trap();
      if (n == 0) return 0;  // the input ends here
      continue;
    }
    if (ec) return 0;
  }
  if (!chunked) return 0;
  std::vector<webtier::balancer::TrailerField> trailers;
  webtier::balancer::ForwardedTrailers(parser.get(), header, trailers);
  for (const auto& [name, value] : trailers) {
    if (Barred(name)) __builtin_trap();
  }
  // What the client gets parses back to the same trailer fields, whole.
  const std::string head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  std::string out;
  webtier::balancer::AppendLastChunk(trailers, out);
  http::response_parser<http::string_body> back;
  size_t used = back.put(boost::asio::buffer(head), ec);
  if (ec || used != head.size() || !back.is_header_done()) __builtin_trap();
  webtier::balancer::HeaderFields back_header;
  back_header.Snapshot(back.get());
  back.eager(true);
  used = back.put(boost::asio::buffer(out), ec);
  if (ec || used != out.size() || !back.is_done()) __builtin_trap();
  std::vector<webtier::balancer::TrailerField> got;
  webtier::balancer::ForwardedTrailers(back.get(), back_header, got);
  if (got != trailers) __builtin_trap();
  return 0;
}
