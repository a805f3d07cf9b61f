// Fuzzes what the balancer does with client bytes before any member sees
// them: Beast's request parser under the proxy's limits, the framing checks
// (smuggling), hop-by-hop stripping and the forwarding rewrite.
#include <cstddef>
#include <cstdint>

#include <boost/beast/http.hpp>

#include "webtier/balancer/http_rules.h"

namespace http = boost::beast::http;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  http::request_parser<http::string_body> parser;
  parser.header_limit(16 * 1024);
  parser.body_limit(64 * 1024);
  parser.eager(true);
  boost::beast::error_code ec;
  size_t used = 0;
  while (used < size) {
    size_t n = parser.put(boost::asio::buffer(data + used, size - used), ec);
    if (ec == http::error::need_more) {
      ec = {};
      break;
    }
    if (ec || n == 0) break;
    used += n;
    if (parser.is_done()) break;
  }
  if (ec || !parser.is_header_done()) return 0;
  if (!webtier::balancer::CheckRequestFraming(parser.get()).empty()) return 0;
  if (!parser.is_done()) return 0;
  auto req = parser.release();
  webtier::balancer::RewriteRequestForUpstream(req, "127.0.0.1", "0123456789abcdef0123456789abcdef");
  // The rewritten request must still serialize.
  http::request_serializer<http::string_body> sr{req};
  sr.split(false);
  size_t guard = 0;
  while (!sr.is_done() && guard++ < 64) {
    sr.next(ec, [&](boost::beast::error_code&, const auto& buffers) { sr.consume(boost::asio::buffer_size(buffers)); });
    if (ec) break;
  }
  return 0;
}
