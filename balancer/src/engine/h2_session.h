// An HTTP/2 client connection (ALPN h2 on --tls-listen, or h2c with prior
// knowledge on --listen): the codec (h2_codec.h) fed from the connection's
// byte stream, one writer that sends what the codec has, and one coroutine
// per stream that takes its request through an Exchange, exactly as an
// HTTP/1.1 request goes (policies, retries, health, limits, forwarding
// headers). Members still get HTTP/1.1 over the keep-alive pools.
//
// Flow control is tied to the member's socket both ways: a request body's
// bytes are acknowledged to the client (WINDOW_UPDATE) only once they were
// written to the member, and a response body is read from the member only
// while its stream has less than kStreamOutBytes waiting for the client's
// window. Memory per connection is thus bounded by the connection window
// (H2Limits), max streams x kStreamOutBytes, and nghttp2's own bound.
//
// Lifecycle: the idle and header timeouts apply while no stream is open (then
// GOAWAY); a drain sends a shutdown notice, then GOAWAY with the last stream
// it will answer, lets those finish and closes. A client that leaves, resets
// a stream or is cut off for abuse abandons its exchanges at once: their
// member connections close, nothing is retried. Used only from its worker's
// thread.
#pragma once

#include <list>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>

#include "engine/connection.h"
#include "engine/h2_codec.h"
#include "engine/relay.h"
#include "engine/worker_context.h"

namespace webtier::balancer {

class H2Session;

// Response bytes a stream may hold for the client before its member is read again.
inline constexpr size_t kStreamOutBytes = 32 * 1024;

// One stream: its request on the way to a member, the answer on its way back.
struct H2Stream {
  H2Stream(H2Session& session, int32_t id, ClientStream& client, const Config& config);

  // Wakes the stream's coroutine (more body, room for the answer, closed, timed out).
  void Notify() {
    wake.cancel();
    if (room != nullptr) room->cancel();
  }
  // Gives `n` request body bytes back to the client's window.
  void Release(size_t n);

  H2Session& session;
  const int32_t id;
  ClientConnection conn;  // the exchange's view of the client: deadlines, the watchdog, client_gone
  H2RequestHead head;
  http::request<http::string_body> request;
  // The request body: arrived and not yet taken; received in all; not yet
  // given back to the client's window (in body_in or on its way to the member).
  std::string body_in;
  uint64_t body_received = 0;
  size_t unconsumed = 0;
  bool body_done = false;     // END_STREAM from the client
  bool body_too_large = false;  // over --max-body-bytes
  bool discard = false;       // answered or done with: more body is thrown away
  // The answer's body, waiting for DATA frames: out[out_sent..] is pending.
  std::string out;
  size_t out_sent = 0;
  bool out_done = false;  // all of it is in `out`
  std::vector<H2Trailer> trailers;  // the member's trailer fields passed on, sent after `out`
  bool out_failed = false;  // the member failed mid-body: reset once `out` is sent
  bool answered = false;  // response headers submitted
  bool closed = false;    // the stream is closed (answered whole, or reset)
  uint32_t reset_code = 0;
  bool running = false;   // its coroutine runs
  int status = 0;         // the answer's status (once answered)
  uint32_t flags = 0;     // AccessFlag bits
  Clock::time_point start = Clock::now();
  std::chrono::system_clock::time_point time;  // for the access log
  uint64_t bytes_out = 0;
  Timer wake;
  // A WebSocket (RFC 8441) stream: its DATA both ways is the tunnel's,
  // without --max-body-bytes. While it tunnels, its member-to-client half
  // waits for room on `room` (the other half waits on `wake`).
  bool tunnel = false;
  Timer* room = nullptr;
};

class H2Session final : public H2Events {
 public:
  // `conn` is the connection (registered with the worker by its session);
  // `received`: what was read before the protocol was known.
  H2Session(WorkerContext& worker, ClientConnection& conn, const std::string& client_ip);
  ~H2Session() override;

  // Serves the connection until it ends; the caller closes the socket, after
  // a lingering close when the result is true (the client may still be
  // sending: closing at once would reset the connection and could destroy
  // the GOAWAY on its way).
  awaitable<bool> Run(beast::flat_buffer& received);
  // The server drains: no new stream; those open finish.
  void Drain();

  H2Codec& codec() { return codec_; }
  WorkerContext& worker() { return worker_; }
  // The writer has something to send.
  void KickWriter() { write_wake_.cancel(); }
  // A response's header list, built and submitted at once (reused: its
  // capacity stays from response to response).
  std::vector<H2Field>& fields() { return fields_; }

  // H2Events.
  H2RequestHead* OnRequestBegin(int32_t id) override;
  void OnRequestHead(int32_t id, bool end_stream) override;
  void OnRequestData(int32_t id, std::string_view data) override;
  void OnRequestEnd(int32_t id) override;
  void OnStreamClose(int32_t id, uint32_t code) override;
  size_t ReadResponseBody(int32_t id, uint8_t* out, size_t length, bool* eof) override;
  bool ResponseFailed(int32_t id) override;
  const std::vector<H2Trailer>* ResponseTrailers(int32_t id) override;

 private:
  awaitable<void> Writer();
  // Copies bytes both ways between a WebSocket stream and the member that
  // switched for it, until either side ends or --idle-timeout-ms pass with no
  // byte either way; then closes the member's connection and ends the
  // stream (END_STREAM after a clean end, RST_STREAM CONNECT_ERROR else).
  awaitable<void> Tunnel(H2Stream& s, UpstreamConnection& up);
  awaitable<void> Serve(std::shared_ptr<H2Stream> s);
  // Waits for the request body to be whole, or big enough to stream; false
  // when the stream is gone or was answered (408, 413).
  awaitable<bool> AwaitBody(H2Stream& s);
  // Answers `s` with the balancer's own JSON error; the rest of its body is
  // thrown away.
  void Answer(H2Stream& s, int status, std::string_view error);
  // Refuses the request on `s`: logged, counted, answered.
  void Reject(H2Stream& s, const RequestError& error);
  // Counts and logs the stream's request once its coroutine is done.
  void Finish(H2Stream& s, const class Exchange* exchange);
  void Forget(int32_t id);
  H2Stream* Find(int32_t id);
  // The connection's deadline: idle while no stream is open, the write's while one is under way.
  void UpdateDeadline();

  WorkerContext& worker_;
  ClientConnection& conn_;
  const std::string& client_ip_;
  H2Codec codec_;
  std::unordered_map<int32_t, std::shared_ptr<H2Stream>> streams_;
  Timer write_wake_;
  Timer done_wake_;
  int running_ = 0;        // stream coroutines alive
  bool writer_running_ = false;
  bool ending_ = false;    // no more reading: streams abandoned, the writer sends what is left
  bool draining_ = false;  // the shutdown notice went out
  bool goaway_ = false;    // the drain's GOAWAY went out
  Clock::time_point drain_start_;
  uint64_t requests_ = 0;  // streams opened
  bool client_left_ = false;  // the client closed or reset the connection
  bool write_failed_ = false;
  bool first_ = true;      // nothing answered yet (the header timeout applies)
  Clock::time_point read_deadline_ = Clock::time_point::max();
  Clock::time_point write_deadline_ = Clock::time_point::max();
  std::string write_buffer_;
  std::vector<H2Field> fields_;
};

// The exchange's steps that touch the client, for a stream (exchange.cc):
// relays a member's response (head parsed) to the stream; true when it went
// through whole and the member's connection is clean for another request.
awaitable<bool> RelayResponseToStream(H2Stream& s, UpstreamConnection& up,
                                      http::response_parser<http::buffer_body>& parser, bool head_request,
                                      std::string_view request_id, RelayBuffers& buffers, const EdgeTap& tap);
// Answers the stream from memory (the edge cache): `fields`, then `body`
// unless it is empty.
void AnswerStreamFromMemory(H2Stream& s, int status, const std::vector<H2Field>& fields, std::string_view body);
// Sends the rest of the request body to the member as it arrives (chunked
// when `chunked`); a client failure goes to `client_error`, the result is
// the member's write error.
awaitable<error_code> StreamBodyFromStream(H2Stream& s, UpstreamConnection& up, bool chunked,
                                           Clock::time_point deadline, error_code& client_error);
// Relays an interim (1xx) answer.
void RelayInterimToStream(H2Stream& s, const http::response_header<>& head);
// Answers a WebSocket stream whose member switched (101): 200 with the
// member's end-to-end fields but Sec-WebSocket-Accept (RFC 8441 5).
void OpenStreamTunnel(H2Stream& s, const http::response_header<>& head, std::string_view request_id);

// The HTTP/2 connection preface's first bytes.
inline constexpr std::string_view kH2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

}  // namespace webtier::balancer
