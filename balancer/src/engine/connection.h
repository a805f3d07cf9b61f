// The connections of the proxy engine: a client connection with its coarse
// deadlines, a (pooled) connection to a member, and a request body still
// arriving while it is forwarded. Each belongs to one worker and is touched
// only from that worker's thread.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include "engine/client_stream.h"
#include "engine/io.h"
#include "webtier/balancer/config.h"
#include "webtier/balancer/upstream/member.h"

namespace webtier::balancer {

struct H2Stream;
class H2Session;

// The configured timeouts as durations, converted once per worker.
struct Timeouts {
  explicit Timeouts(const Config& c)
      : header(c.header_timeout_ms), idle(c.idle_timeout_ms), request(c.request_timeout_ms),
        connect(c.connect_timeout_ms) {}
  std::chrono::milliseconds header;   // --header-timeout-ms
  std::chrono::milliseconds idle;     // --idle-timeout-ms, and each write to a client
  std::chrono::milliseconds request;  // --request-timeout-ms
  std::chrono::milliseconds connect;  // --connect-timeout-ms
};

// A connection to a member, pooled per worker between requests.
struct UpstreamConnection {
  // What the read pending on a pooled connection shares with its handler
  // (IdleConnections), which may run after the connection was taken or is gone.
  struct IdleWatch {
    UpstreamConnection* pooled = nullptr;  // the connection while it sits in the pool
    char byte = 0;                         // where the read puts a stray byte
  };

  // Room for a member's answer head and the start of its body (the whole of
  // a small one) in one read; a read that comes up short also tells the
  // reactor the queue is empty, so pooling the connection costs no probe.
  static constexpr size_t kReadBytes = 16384;

  UpstreamConnection(asio::io_context& ctx, std::shared_ptr<Member> h) : stream(ctx), member(std::move(h)) {
    buffer.reserve(kReadBytes);
  }
  ~UpstreamConnection() {
    if (watch) watch->pooled = nullptr;
  }
  UpstreamConnection(const UpstreamConnection&) = delete;
  UpstreamConnection& operator=(const UpstreamConnection&) = delete;

  tcp::socket stream;
  beast::flat_buffer buffer;
  std::shared_ptr<Member> member;
  Clock::time_point idle_since;
  bool reused = false;
  // Set (and the connection closed) when the member sent a byte or closed
  // while the connection was pooled.
  bool went_bad = false;
  std::shared_ptr<IdleWatch> watch;  // made the first time it is pooled
};

// A client connection, registered with its worker so a drain can close the
// idle ones and the watchdog can enforce its deadlines.
//
// Timeouts are coarse (the watchdog's tick): an operation sets a deadline (a
// store, no timer), and the worker's watchdog cancels the socket's pending
// operation once the deadline has passed, setting the matching *_timed_out
// flag. This keeps timer work off the request path (HAProxy and nginx do the
// same). While a member connection is in use (`upstream` set) the watchdog
// also peeks at the client's socket: an EOF or reset there means the client
// went away, so it sets `client_gone` and cancels the member's operation
// (the exchange then closes that connection and stops; no retry).
//
// An HTTP/2 connection has one for itself and one per stream (`h2` set),
// all on the same ClientStream: a stream's deadline wakes its coroutine
// instead of cancelling the socket, and the stream's client is gone when the
// stream is reset or the connection ends, which the session tells it.
struct ClientConnection {
  explicit ClientConnection(ClientStream& s) : stream(s) {}
  ClientStream& stream;
  H2Session* h2_session = nullptr;  // the connection speaks HTTP/2 (its own entry)
  H2Stream* h2 = nullptr;           // this is one stream of an HTTP/2 connection
  // Serialized heads, reused from request to request (their capacity stays).
  std::string request_head;   // as sent to the member (kept for a retry)
  std::string response_head;  // as sent to the client
  bool idle = true;  // between requests
  Clock::time_point idle_since = Clock::now();  // when it last became idle
  Clock::time_point deadline = Clock::time_point::max();
  bool timed_out = false;
  // The member connection this client's request is using, if any.
  tcp::socket* upstream = nullptr;
  Clock::time_point upstream_deadline = Clock::time_point::max();
  bool upstream_timed_out = false;
  bool client_gone = false;  // the watchdog saw the client's EOF or reset (for good)
  // Requests this connection has begun; the first one never takes a member
  // connection another client used (unless --upstream-reuse always).
  uint64_t requests = 0;
  // While set, the watchdog abandons the member's operation once this member
  // fails its health checks (a movable attempt waiting for its response).
  const Member* move_if_unhealthy = nullptr;
  bool upstream_unhealthy = false;  // the watchdog did so

  void SetDeadline(std::chrono::milliseconds d) {
    deadline = Clock::now() + d;
    timed_out = false;
  }
  // `d` from now, but never past `limit` (an absolute deadline no read extends).
  void SetDeadline(std::chrono::milliseconds d, Clock::time_point limit) {
    deadline = std::min(Clock::now() + d, limit);
    timed_out = false;
  }
  void ClearDeadline() { deadline = Clock::time_point::max(); }
  void SetUpstreamDeadline(tcp::socket* s, std::chrono::milliseconds d) {
    upstream = s;
    upstream_deadline = Clock::now() + d;
    upstream_timed_out = false;
    upstream_unhealthy = false;
  }
  void ClearUpstream() {
    upstream = nullptr;
    move_if_unhealthy = nullptr;
    upstream_deadline = Clock::time_point::max();
  }
  // `ec`, or a timeout when the watchdog cut the client's operation short.
  error_code ClientError(error_code ec) const { return timed_out ? error_code(beast::error::timeout) : ec; }
  // `ec`, or a timeout when the watchdog cut the member's operation short
  // (for its deadline or its health).
  error_code UpstreamError(error_code ec) const {
    return upstream_timed_out || upstream_unhealthy ? error_code(beast::error::timeout) : ec;
  }
  // The watchdog's part: true when the member's operation is to be cut short
  // because its member turned unhealthy (then upstream_unhealthy is set).
  bool AbandonUnhealthy() {
    if (move_if_unhealthy == nullptr || HealthAdmits(move_if_unhealthy->health())) return false;
    upstream_unhealthy = true;
    return true;
  }
};

// Request bodies up to this size are read whole before the request goes to
// a member, so that an idempotent request can be tried again on another one.
// Larger bodies are streamed: the head leaves when this much has arrived, then
// the rest as it comes (no retry once the head has left).
inline constexpr size_t kBufferedBodyBytes = 64 * 1024;

// A request whose body was still arriving when it went to a member: the rest
// is read from `buffer` and the client's socket through `parser` (eager, its
// body string emptied as each part is sent on), or for an HTTP/2 stream from
// its DATA frames (`parser` null).
struct StreamedBody {
  beast::flat_buffer* buffer;
  http::request_parser<http::string_body>* parser;
  std::optional<uint64_t> length;  // the client's Content-Length; none: sent on chunked
  Clock::time_point deadline;  // the whole body by then (--body-timeout-ms after its header)
  size_t trailer_limit;        // ReadMessage's bound on the trailer section
  error_code client_error;
  bool chunked() const { return !length.has_value(); }
  // The client's read error, or kBodyTimeout when the body deadline cut it.
  error_code BodyError(error_code ec) const {
    if (ec == beast::error::timeout && Clock::now() >= deadline) return MakeErrorCode(BodyLimit::kBodyTimeout);
    return ec;
  }
};

}  // namespace webtier::balancer
