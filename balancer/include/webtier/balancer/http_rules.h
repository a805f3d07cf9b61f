// The HTTP rules the proxy applies to every message, kept free of sockets so
// they can be unit-tested and fuzzed: request framing and request-target
// checks (no smuggling), the origin-form rewrite and the dropping of request
// trailer fields (both edit the parsed request in place), and the
// serialization of what goes to a member and back to the client (hop-by-hop
// fields dropped, forwarding headers added). The heads are written straight
// into a reused string: no copy of the message is made. Free functions are
// pure and safe on any thread; a HeaderFields belongs to one session.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>

namespace webtier::balancer {

// Why a request must not go to a member; each kind has its own answer.
enum class RequestFault {
  kNone,
  kFraming,        // 400: framing a member could read differently from the balancer (smuggling)
  kUnknownCoding,  // 501: a Transfer-Encoding coding the balancer does not implement
  kBadRequest,     // 400: Host missing or repeated, a request-target of the wrong form
  kConnect,        // 405: CONNECT; the balancer tunnels nothing (the answer names kAllowedMethods)
};

// The verdict on a request's head: the fault and its text (for the log and
// the error body; "" when the request may go on).
struct RequestCheck {
  RequestFault fault = RequestFault::kNone;
  std::string_view why;
  bool ok() const { return fault == RequestFault::kNone; }
};

// The methods a 405 answer lists in Allow.
inline constexpr std::string_view kAllowedMethods = "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, TRACE";

// Checks what Beast's parser lets through but a proxy must not forward, in
// this order:
// - framing (kFraming): Content-Length repeated (even with equal values) or
//   given as a list, Content-Length together with Transfer-Encoding,
//   Transfer-Encoding on HTTP/1.0, and any Transfer-Encoding (all its field
//   lines together, OWS trimmed) other than exactly one `chunked` token
//   (case-insensitive): repeated chunked, codings before it, parameters,
//   empty elements. A list naming a coding other than chunked, gzip, x-gzip,
//   deflate, compress or identity is kUnknownCoding instead;
// - Host (kBadRequest): missing or repeated on HTTP/1.1, repeated on 1.0;
// - the request-target: CONNECT is kConnect whatever its target; otherwise
//   origin-form (`/path?query`), absolute-form with an http or https scheme
//   and a non-empty authority without userinfo or fragment (see
//   ToOriginForm), and asterisk-form (`*`) for OPTIONS only; anything else
//   (authority-form included) is kBadRequest.
RequestCheck CheckRequestFraming(const boost::beast::http::request_header<>& header);

// Rewrites an absolute-form target (`http://host:port/a?b`) to origin-form
// (`/a?b`; `/` when the path is empty, `*` for an OPTIONS without path) and
// sets Host to the target's authority, replacing the client's Host. Leaves
// other targets alone. Call only on a head CheckRequestFraming accepted.
void ToOriginForm(boost::beast::http::request_header<>& header);

// The fields a request had when its header was complete. Beast's parser adds
// the trailer fields of a chunked body to the same container (next to header
// fields of the same name, so neither position nor count tells them apart);
// DropTrailers erases every field that was not there at Snapshot time, so no
// trailer field ever reaches a member as a header field. The balancer drops
// request trailers (nginx does too; it never forwards them as trailers either).
// One per connection, reused from request to request.
class HeaderFields {
 public:
  // Records the fields of a complete header (after ToOriginForm).
  void Snapshot(const boost::beast::http::fields& fields);
  // Erases from `fields` every field added since Snapshot.
  void DropTrailers(boost::beast::http::fields& fields) const;

 private:
  std::vector<const void*> fields_;  // the fields' addresses, sorted
};

// The hop-by-hop fields of one message: Connection, Keep-Alive, Proxy-*, TE,
// Trailer, Upgrade, and every field the Connection header names (except the
// fields that frame the message: a client cannot make the proxy drop those).
// Built once per message; Drops() is asked for each field while serializing.
class HopByHop {
 public:
  explicit HopByHop(const boost::beast::http::fields& fields);
  bool Drops(const boost::beast::http::fields::value_type& field) const;

 private:
  boost::beast::string_view connection_;  // the Connection value, "" when absent
};

// GET, HEAD, OPTIONS, PUT, DELETE (and TRACE): safe to send twice.
bool IsIdempotent(boost::beast::http::verb method);

// An Upgrade request the proxy tunnels (WebSocket): HTTP/1.1 GET without a
// body, an `Upgrade` field and `upgrade` among the Connection tokens.
bool IsUpgradeRequest(const boost::beast::http::request<boost::beast::http::string_body>& req);

// How a request body follows its head to the member.
struct UpstreamBody {
  // False: the body is whole in req.body() and goes with its Content-Length.
  // True: it is streamed after the head as it arrives.
  bool streamed = false;
  // Streamed: the client's Content-Length; none = sent chunked.
  std::optional<uint64_t> length;
};

// Writes the head of `req` as it goes to a member into `out` (replacing its
// contents; the caller reuses the string): the request line as HTTP/1.1, the
// client's fields without the hop-by-hop ones, Transfer-Encoding and Expect
// (the balancer re-frames the body and answered any 100-continue), then
// `Host: <authority>` if the client (HTTP/1.0) sent none, the body framing (see
// UpstreamBody; for a whole body, Content-Length when the request had a body
// or body framing), X-Forwarded-For with `client_ip` appended to what the
// client sent, X-Forwarded-Proto (`https` when the client came over TLS,
// `tls`, else `http`; the client's own is dropped), and one X-Request-Id: the client's,
// else `new_request_id`. For an IsUpgradeRequest, `Connection: upgrade` and
// the client's `Upgrade` go on too (else both are hop-by-hop). Returns the X-Request-Id sent (a view into `req` or
// `new_request_id`).
// `authority` is the target URI's authority when the request names none (RFC
// 9112 3.3: the connection's local address and port); empty, the Host sent is
// empty (RFC 9112 3.2), which some members (nginx) refuse.
std::string_view SerializeUpstreamRequest(const boost::beast::http::request<boost::beast::http::string_body>& req,
                                          std::string_view client_ip, std::string_view new_request_id,
                                          std::string& out, const UpstreamBody& body = {}, bool tls = false,
                                          std::string_view authority = {});

// How the response body travels to the client.
enum class BodyFraming {
  kAsIs,            // bodyless, or Content-Length kept as the member sent it
  kChunked,         // chunked by the balancer (member sent chunked or close-delimited; client HTTP/1.1)
  kCloseDelimited,  // ends when the balancer closes (an HTTP/1.0 client without Content-Length)
};

// Writes the head of a member's response as it goes to the client into `out`
// (replacing its contents): the status line in the client's HTTP version, the
// member's fields without the hop-by-hop ones (and without Content-Length and
// Transfer-Encoding unless kAsIs), Transfer-Encoding: chunked for kChunked,
// the Connection field the client's version needs for `keep_alive` (for a
// 101: `Connection: upgrade` and the member's `Upgrade`), and
// X-Request-Id: `request_id` when the member did not send one.
void SerializeResponseHead(const boost::beast::http::response_header<>& res, unsigned client_version,
                           bool keep_alive, BodyFraming framing, std::string_view request_id, std::string& out);

// Request ids: 32 lower-case hex digits from a per-thread random generator.
inline constexpr size_t kRequestIdLength = 32;
void WriteRequestId(char (&out)[kRequestIdLength]);

}  // namespace webtier::balancer
