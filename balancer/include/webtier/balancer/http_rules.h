// The HTTP rules the proxy applies to every message, kept free of sockets so
// they can be unit-tested and fuzzed: request framing checks (no smuggling),
// and the serialization of what goes to a member and back to the client
// (hop-by-hop fields dropped, forwarding headers added). The heads are written
// straight into a reused string: no copy of the message is modified.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>

namespace webtier::balancer {

// Checks what Beast's parser lets through but a proxy must not forward:
// Content-Length repeated (even with equal values) or given as a list,
// Content-Length together with Transfer-Encoding, a Transfer-Encoding whose
// last coding is not chunked or on HTTP/1.0, a missing or repeated Host on
// HTTP/1.1. Returns "" when the framing is fine, else the reason (for the log).
std::string_view CheckRequestFraming(const boost::beast::http::request_header<>& header);

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
// (the balancer re-frames the body and answered any 100-continue), then an
// empty Host if the client (HTTP/1.0) sent none, the body framing (see
// UpstreamBody; for a whole body, Content-Length when the request had a body
// or body framing), X-Forwarded-For with `client_ip` appended to what the
// client sent, X-Forwarded-Proto: http, and one X-Request-Id: the client's,
// else `new_request_id`. For an IsUpgradeRequest, `Connection: upgrade` and
// the client's `Upgrade` go on too (else both are hop-by-hop). Returns the X-Request-Id sent (a view into `req` or
// `new_request_id`).
std::string_view SerializeUpstreamRequest(const boost::beast::http::request<boost::beast::http::string_body>& req,
                                          std::string_view client_ip, std::string_view new_request_id,
                                          std::string& out, const UpstreamBody& body = {});

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
