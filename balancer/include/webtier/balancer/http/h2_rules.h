// The HTTP rules for an HTTP/2 stream, kept free of nghttp2 and sockets so
// they can be unit-tested and fuzzed: a request's header block becomes the
// same Beast request an HTTP/1.1 client's head does (and then meets the same
// checks), and a member's HTTP/1.1 response head becomes the header list of
// an HTTP/2 response. nghttp2 has already checked what RFC 9113 asks of the
// block itself (8.2: lower-case names, no connection-specific fields, values
// without CR, LF or NUL; 8.3: pseudo-headers known, once each, first, all
// present); these rules take it from there. Pure; safe on any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "webtier/balancer/http/request_errors.h"

namespace webtier::balancer {

// One request's header block, field by field, as it is decoded; then the
// request it stands for. Bounded as an HTTP/1.1 head is: more than
// `max_fields` fields or `max_bytes` of names and values (each field counted
// as RFC 9113's SETTINGS_MAX_HEADER_LIST_SIZE counts it: name + value + 32)
// is a 431, and nothing more is kept once the bound is crossed (the block is
// still decoded to its end, which HPACK's shared state needs).
class H2RequestHead {
 public:
  H2RequestHead(size_t max_fields, size_t max_bytes) : max_fields_(max_fields), max_bytes_(max_bytes) {
    fields_.reserve(16);  // a browser's request, in one allocation
  }

  // A field of the block (pseudo-headers too), in order.
  void Add(std::string_view name, std::string_view value);
  // True once a bound is crossed.
  bool too_large() const { return too_large_ || too_many_; }
  // The header list size so far (RFC 9113 6.5.2).
  size_t bytes() const { return bytes_; }
  // An extended CONNECT (RFC 8441): :method CONNECT with a :protocol.
  bool extended_connect() const { return method_ == "CONNECT" && !protocol_.empty(); }

  // Fills `req` (empty) with the request: the method, :path as the target,
  // HTTP/1.1, :authority as Host (a Host field too must then name the same,
  // RFC 9113 8.3.1), the other fields in order with `cookie` crumbs joined
  // into one field (8.2.3). An extended CONNECT for `websocket` (RFC 8441)
  // becomes the HTTP/1.1 Upgrade request it stands for: GET :path with
  // `Connection: Upgrade` and `Upgrade: websocket` (the caller adds the
  // Sec-WebSocket-Key an HTTP/1.1 member needs). None when it may go on to
  // the HTTP/1.1 checks (CheckRequestFraming and the rest); else the answer:
  // 431 over a bound, 405 for a plain CONNECT (the balancer tunnels no TCP),
  // 400 for another :protocol, for a :scheme other than http or https, a
  // missing authority or one that differs from Host.
  std::optional<RequestError> Build(boost::beast::http::request<boost::beast::http::string_body>& req);

 private:
  struct Field {
    std::string name, value;
  };
  size_t max_fields_, max_bytes_;
  size_t bytes_ = 0;
  bool too_large_ = false;  // over max_bytes
  bool too_many_ = false;   // over max_fields
  std::string method_, scheme_, authority_, path_, protocol_;
  std::string cookie_;
  size_t cookies_ = 0;
  std::vector<Field> fields_;  // regular fields but cookie
};

// A header field of an HTTP/2 response: a lower-case name, and a value that
// views the message it comes from (nghttp2 copies both when the response is
// submitted).
using H2Field = std::pair<std::string, std::string_view>;
// A trailer field kept past the answer it came with: name (lower-case) and value.
using H2Trailer = std::pair<std::string, std::string>;

// The header list of a member's HTTP/1.1 response as it goes to an HTTP/2
// client, into `out` (replacing it): no `:status` (the caller adds it), the
// member's fields with lower-case names and without the hop-by-hop ones
// (Connection and what it names, Keep-Alive, Proxy-*, TE, Trailer, Upgrade)
// or Transfer-Encoding (HTTP/2 frames the body itself; RFC 9113 8.2.2);
// Content-Length only when `keep_length` (the member framed the body with it,
// or the answer has none); X-Request-Id: `request_id` when the member sent none.
// The values view `res` and `request_id`.
void H2ResponseFields(const boost::beast::http::response_header<>& res, bool keep_length,
                      std::string_view request_id, std::vector<H2Field>& out);

}  // namespace webtier::balancer
