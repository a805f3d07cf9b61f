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
#include <utility>
#include <vector>

#include <boost/beast/http/fields.hpp>
#include <boost/system/error_code.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>

#include "webtier/common/trace_context.h"

namespace webtier::balancer {

// Why a request must not go to a member; each kind has its own answer.
enum class RequestFault {
  kNone,
  kFraming,        // 400: framing a member could read differently from the balancer (smuggling)
  kUnknownCoding,  // 501: a Transfer-Encoding coding the balancer does not implement
  kBadRequest,     // 400: Member missing, repeated or invalid, a request-target of the wrong form
  kConnect,        // 405: CONNECT; the balancer tunnels nothing (the answer names kAllowedMethods)
  kTooManyFields,  // 431: more header fields than --max-header-fields
  kMisdirected,    // 421: a Host the operator did not list (--host)
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
// - the field count (kTooManyFields): more than `max_fields` field lines
//   (0 = no limit);
// - Host (kBadRequest): missing or repeated on HTTP/1.1, repeated on 1.0, or
//   a value that is not `uri-host [ ":" port ]` (see IsValidHost);
// - the request-target: CONNECT is kConnect whatever its target; otherwise
//   origin-form (`/path?query`), absolute-form with an http or https scheme
//   and a non-empty authority without userinfo or fragment (see
//   ToOriginForm), and asterisk-form (`*`) for OPTIONS only; anything else
//   (authority-form included) is kBadRequest.
RequestCheck CheckRequestFraming(const boost::beast::http::request_header<>& header, size_t max_fields = 0);

// True when `host` is a valid Host field value (RFC 9110 7.2): uri-host as
// RFC 3986 defines it (a reg-name of unreserved, sub-delims and
// pct-encoded characters, an IPv4 address, or an IP-literal in brackets),
// then an optional `:` and decimal port of at most 5 digits. Empty is valid
// (RFC 9112 3.2). Anything with spaces, `/`, `@`, `?`, `#`, `\`, control
// characters or obs-fold remnants is not.
bool IsValidHost(std::string_view host);

// A Host value as compared and keyed: lower case, the default port of the
// scheme (80 plain, 443 with `tls`) and a trailing dot of the name dropped.
// `host` must be IsValidHost.
std::string NormalizeHost(std::string_view host, bool tls);

// The Host values the operator serves (--host): exact names after
// NormalizeHost, or `*.example.com` for any name below example.com. Empty:
// every Host is served.
class HostAllowList {
 public:
  HostAllowList() = default;
  explicit HostAllowList(const std::vector<std::string>& entries);
  bool empty() const { return exact_.empty() && suffixes_.empty(); }
  // True when a request with this (valid) Host is served.
  bool Admits(std::string_view host, bool tls) const;

 private:
  std::vector<std::string> exact_;     // normalised names, with a port only when not the default
  std::vector<std::string> suffixes_;  // ".example.com" for "*.example.com"
};

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
  // Whether `field` was among the fields at Snapshot.
  bool Holds(const boost::beast::http::fields::value_type& field) const;
  // How many fields there were at Snapshot.
  size_t size() const { return fields_.size(); }

 private:
  std::vector<const void*> fields_;  // the fields' addresses, sorted
};

// The hop-by-hop fields of one message: Connection, Keep-Alive, Proxy-*, TE,
// Trailer, Upgrade, and every field the Connection header names (except the
// fields that frame the message: a client cannot make the proxy drop those).
// Built once per message; Drops() is asked for each field while serializing.
// The message's field names go into a small hash table once (F of them, at
// most --max-header-fields), then each Connection token is looked up there,
// so a message of F fields and T tokens costs O(F + T), not F x T (nor a sort
// of the T tokens): a client cannot make the proxy's work grow with the
// product of the two, or much beyond the size of its head.
class HopByHop {
 public:
  explicit HopByHop(const boost::beast::http::fields& fields);
  bool Drops(const boost::beast::http::fields::value_type& field) const;

 private:
  struct Slot {
    uint64_t hash = 0;      // of the lower-case name, never 0 in a used slot
    std::string_view name;  // a field name present
    bool named = false;     // some Connection token names it
  };
  // Open addressing, at least twice as many slots as fields; empty when no
  // token names anything but keep-alive, upgrade or close (the usual case).
  std::vector<Slot> table_;
};

// GET, HEAD, OPTIONS, PUT, DELETE (and TRACE): safe to send twice.
bool IsIdempotent(boost::beast::http::verb method);

// An Upgrade request the proxy tunnels (WebSocket): HTTP/1.1 GET without a
// body, `websocket` among the `Upgrade` tokens and `upgrade` among the
// Connection tokens. Any other protocol (h2c included, which would carry
// requests past every per-request check) is not tunnelled: its Upgrade field
// is dropped as hop-by-hop and the request goes on as an ordinary one.
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
// `tls`, else `http`) and X-Forwarded-Host (the Host sent) set by the
// balancer, and one X-Request-Id: the client's, else (or always, with
// `replace_request_id`) `new_request_id`. With `trace`, the trace context
// (trace_context.h): the client's traceparent continued with trace->span_id
// as parent, and its tracestate, when the traceparent is valid and alone;
// else a new trace with trace->trace_id, and no tracestate. Every
// other forwarding or routing-override field a client may send
// (IsClientForwardingField) is dropped: a member may trust what it gets.
// For an IsUpgradeRequest, `Connection: upgrade` and `Upgrade: websocket` go
// on too (else both are hop-by-hop). Returns the X-Request-Id sent (a view into `req` or
// `new_request_id`).
// `authority` is the target URI's authority when the request names none (RFC
// 9112 3.3: the connection's local address and port); empty, the Host sent is
// empty (RFC 9112 3.2), which some members (nginx) refuse.
std::string_view SerializeUpstreamRequest(const boost::beast::http::request<boost::beast::http::string_body>& req,
                                          std::string_view client_ip, std::string_view new_request_id,
                                          std::string& out, const UpstreamBody& body = {}, bool tls = false,
                                          std::string_view authority = {}, bool replace_request_id = false,
                                          RequestTrace* trace = nullptr);

// Forwarding and routing-override fields only the balancer may set:
// Forwarded, X-Forwarded-Host/-Proto/-Port/-Scheme/-Server/-Ssl, X-Real-IP,
// X-Client-IP, True-Client-IP, X-Original-URL, X-Rewrite-URL,
// X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override, Front-End-Https,
// X-Url-Scheme. (X-Forwarded-For is kept and appended to.)
bool IsClientForwardingField(std::string_view name);

// A member's response framing, as far as the balancer can relay it
// faithfully. Transfer-Encoding (all its lines as one list) must end in
// exactly one `chunked`, without parameters, and must not come with
// Content-Length; the codings before chunked (`gzip` in `gzip, chunked`) are
// kept in `codings` and relayed to an HTTP/1.1 client. Anything else (a list
// not ending in chunked, which would make the body close-delimited,
// Content-Length beside it, a parameter, an empty element) is refused: the
// client gets 502 and the member is counted as failed.
struct ResponseFraming {
  std::string_view why;  // empty: relayable
  std::string codings;   // e.g. "gzip" or "gzip, deflate"; empty for plain chunked or no Transfer-Encoding
  bool ok() const { return why.empty(); }
};
ResponseFraming CheckResponseFraming(const boost::beast::http::response_header<>& res);

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
                           bool keep_alive, BodyFraming framing, std::string_view request_id, std::string& out,
                           std::string_view codings = {});

// A field of a trailer section the proxy passes on: views into the parsed
// message's fields.
using TrailerField = std::pair<std::string_view, std::string_view>;

// The number of fields `fields` holds.
size_t FieldCount(const boost::beast::http::fields& fields);

// Collects into `out` (replacing its contents) the trailer fields of a
// member's chunked answer that go on to the client: the fields `header` did
// not hold at its Snapshot (Beast 1.81 adds the trailer fields to the
// header's, each after the last field of its name, so only the fields' own
// identity tells them apart), without those a trailer must not carry or a
// proxy must not pass on. Dropped: framing and routing (Content-Length,
// Transfer-Encoding, Host), hop-by-hop fields (as in the head, and any the
// Connection header names), and the fields RFC 9110 6.5.1 keeps out of
// trailers because a recipient that merges them into the header would act on
// them too late or wrongly: response control (Age, Cache-Control, Date,
// Expires, Location, Pragma, Retry-After, Vary, Warning), representation
// metadata (Content-Encoding, Content-Location, Content-Range, Content-Type,
// ETag, Last-Modified), authentication and cookies (WWW-Authenticate,
// Authentication-Info, Set-Cookie), and the fields the balancer itself sets
// on an answer (Cache-Status, X-Request-Id). O(F log H) for F fields, H of
// them the header's.
void ForwardedTrailers(const boost::beast::http::fields& fields, const HeaderFields& header,
                       std::vector<TrailerField>& out);

// Appends the end of a chunked body carrying `trailers` to `out`: the last
// chunk, each field as `Name: value` CRLF, the final CRLF.
void AppendLastChunk(const std::vector<TrailerField>& trailers, std::string& out);

// Writes an interim (1xx other than 101) response head as it goes to an
// HTTP/1.1 client into `out`: the status line and the member's fields without
// the hop-by-hop ones (RFC 9110 15.2: a proxy forwards a 1xx it did not ask
// for, such as 103 Early Hints).
void SerializeInterimHead(const boost::beast::http::response_header<>& res, std::string& out);

// The proxy's own bounds on a request body's framing, raised while it is read
// (Beast 1.81 bounds neither a chunk-size line nor the trailer section, and
// would buffer either without end).
enum class BodyLimit {
  kChunkLineTooLong = 1,  // a chunk-size line with its extensions over kMaxChunkLineBytes
  kTrailerTooLarge,       // a trailer section over --max-header-bytes
  kBodyTimeout,           // the body not complete within --body-timeout-ms
};
boost::system::error_code MakeErrorCode(BodyLimit limit);

inline constexpr size_t kMaxChunkLineBytes = 4096;

// For a body read: what the parser holds back when it needs more (`pending`:
// a chunk-size line, or the last chunk and the trailer section) must stay
// within kMaxChunkLineBytes and `trailer_limit`; else the error to stop with.
// Data bytes never wait there (an eager parser takes them as they come), so
// this bounds the memory a chunked body can pin, however it is shaped: an
// accepted `pending` is at most kMaxChunkLineBytes + trailer_limit + 4 bytes.
boost::system::error_code PendingBodyError(std::string_view pending, size_t trailer_limit);

// Request ids: 32 lower-case hex digits from a per-thread random generator.
inline constexpr size_t kRequestIdLength = 32;
void WriteRequestId(char (&out)[kRequestIdLength]);

}  // namespace webtier::balancer
