// HTTP/2 framing for one client connection, on libnghttp2, without any I/O:
// bytes from the client go in (Receive), bytes for the client come out
// (Send), and what they mean reaches the owner as H2Events. The owner (an
// H2Session, or a fuzz target) does the reading and writing. Besides RFC
// 9113's rules, which nghttp2 enforces, the codec carries the connection's
// defences against the known HTTP/2 denials of service, each ended with
// GOAWAY(ENHANCE_YOUR_CALM) and named by abuse():
// - Rapid Reset: streams the client cancels before their answer draw from a
//   budget (kResetBurst, refilled at kResetRate a second); nghttp2's own
//   limit on RST_STREAM frames stands behind it;
// - control-frame floods: SETTINGS, PING, PRIORITY, and DATA or HEADERS that
//   carry nothing, draw from another (kControlBurst, kControlRate a second);
// - CONTINUATION floods: at most kMaxContinuations after a HEADERS frame;
// - a client that does not read our SETTINGS and PING acknowledgements
//   (nghttp2's bound on queued acks);
// - memory: everything nghttp2 allocates for the connection (HPACK tables,
//   queued frames, stream state) within H2Limits::memory_bytes.
// Request bodies obey flow control tied to their consumer: no WINDOW_UPDATE
// is sent for a byte until the owner says it was passed on (Consume), so a
// slow member slows its client instead of filling memory.
// Used from one thread.
#pragma once

#include <nghttp2/nghttp2.h>
#include <sys/types.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "webtier/balancer/clock.h"
#include "webtier/balancer/http/h2_rules.h"

namespace webtier::balancer {

// What ended a connection for abuse (the `kind` label of balancer_h2_abuse_total).
enum class H2Abuse {
  kNone = 0,
  kRapidReset,     // streams cancelled before their answer, over the budget
  kControlFlood,   // SETTINGS / PING / PRIORITY / empty frames over the budget
  kContinuation,   // more CONTINUATION frames than kMaxContinuations
  kAckFlood,       // acknowledgements piling up unread (nghttp2: flooded)
  kMemory,         // over H2Limits::memory_bytes
  kResetFlood,     // RST_STREAM frames over nghttp2's own rate limit
  kCount
};
const char* H2AbuseName(H2Abuse abuse);

struct H2Limits {
  uint32_t max_streams = 100;               // SETTINGS_MAX_CONCURRENT_STREAMS
  size_t max_header_bytes = 16 * 1024;      // a request's header list (SETTINGS_MAX_HEADER_LIST_SIZE)
  size_t max_header_fields = 100;           // its fields
  int32_t connection_window = 1024 * 1024;  // request body bytes in flight on the connection
  int32_t stream_window = 65535;            // ... and on one stream (SETTINGS_INITIAL_WINDOW_SIZE)
  size_t memory_bytes = 2 * 1024 * 1024;    // nghttp2's allocations for the connection
};

// What the codec tells its owner, from inside Receive() and Send().
class H2Events {
 public:
  virtual ~H2Events() = default;
  // A client opens stream `id` with a request: where its header block goes
  // (it must live until OnClose). Null refuses the stream (REFUSED_STREAM).
  virtual H2RequestHead* OnRequestBegin(int32_t id) = 0;
  // The request's header block is complete; `end_stream`: it has no body.
  virtual void OnRequestHead(int32_t id, bool end_stream) = 0;
  // Body bytes of the request on `id` (to be Consume()d once passed on).
  virtual void OnRequestData(int32_t id, std::string_view data) = 0;
  // The request on `id` is complete (after its body or its trailer, which
  // is dropped as an HTTP/1.1 request's is).
  virtual void OnRequestEnd(int32_t id) = 0;
  // Stream `id` is closed: answered whole, or reset by either side
  // (`code` is the RST_STREAM error then, else 0).
  virtual void OnStreamClose(int32_t id, uint32_t code) = 0;
  // Up to `length` bytes of the response body on `id` into `out`: the count,
  // `eof` set with the last of it; 0 without `eof` when none is ready (the
  // owner calls H2Codec::Resume once some is).
  virtual size_t ReadResponseBody(int32_t id, uint8_t* out, size_t length, bool* eof) = 0;
  // Whether the response on `id` broke off (its member failed mid-body):
  // asked when ReadResponseBody has nothing more; the stream is then reset
  // (INTERNAL_ERROR) after what was read went out.
  virtual bool ResponseFailed(int32_t id) = 0;
  // The trailer fields (lower-case names) to send after the response body on
  // `id`; asked once, with the body's end. Null or empty: none, the last DATA
  // frame ends the stream.
  virtual const std::vector<H2Trailer>* ResponseTrailers(int32_t /*id*/) { return nullptr; }
};

class H2Codec {
 public:
  // The limits are sent in the first SETTINGS (queued for Send).
  H2Codec(H2Events& events, const H2Limits& limits);
  ~H2Codec();
  H2Codec(const H2Codec&) = delete;
  H2Codec& operator=(const H2Codec&) = delete;

  // Bytes from the client (the connection preface first). False when the
  // connection must end: a protocol error or abuse (a GOAWAY saying so may
  // be waiting in Send), or a broken preface.
  bool Receive(const uint8_t* data, size_t length);
  // The next bytes for the client; empty when there is nothing to send now.
  // Valid until the next call.
  std::string_view Send();
  // Whether the connection still wants to read or write (false for both:
  // it is finished, e.g. after a GOAWAY with no stream left).
  bool WantRead() const;
  bool WantWrite() const;

  // The response on `id`: `status`, then `fields` (H2ResponseFields), then
  // a body read through ReadResponseBody unless `has_body` is false.
  // False when the stream is gone.
  bool Respond(int32_t id, int status, const std::vector<H2Field>& fields, bool has_body);
  // An interim (1xx) response on `id`.
  void Interim(int32_t id, int status, const std::vector<H2Field>& fields);
  // More of `id`'s response body is ready.
  void Resume(int32_t id);
  // Resets stream `id` with `code`.
  void Reset(int32_t id, uint32_t code);
  // `length` request body bytes of `id` were passed on: the client may send
  // as many more.
  void Consume(int32_t id, size_t length);
  // Graceful end, first step: tells the client to open no new stream.
  void ShutdownNotice();
  // Graceful end: GOAWAY(NO_ERROR) naming the last stream this connection
  // will answer; the streams up to it finish.
  void GoAway();
  // GOAWAY with `code`, at once; no stream is answered any more.
  void Terminate(uint32_t code);

  H2Abuse abuse() const { return abuse_; }
  // The error code of the GOAWAY sent, if one was (-1 if not).
  int64_t goaway_sent() const { return goaway_sent_; }
  // nghttp2's error for a failed Receive (0: none).
  int error() const { return error_; }
  size_t memory() const { return memory_; }
  int32_t open_streams() const { return static_cast<int32_t>(streams_.size()); }

  static constexpr uint32_t kMaxContinuations = 8;
  static constexpr double kResetBurst = 200, kResetRate = 20;
  static constexpr double kControlBurst = 1000, kControlRate = 100;

 private:
  // A token bucket: Take() false once empty.
  struct Budget {
    double tokens, burst, rate;
    Clock::time_point last;
    bool Take();
  };
  struct Stream {
    H2RequestHead* head = nullptr;
    bool answered = false;
  };
  friend struct H2Callbacks;
  void Abuse(H2Abuse kind);
  // `:status` (its digits written into `digits`) and `fields` as nghttp2
  // takes them, in nva_ (valid until the next call).
  const std::vector<nghttp2_nv>& HeaderList(int status, const std::vector<H2Field>& fields, char (&digits)[3]);
  // Whether `id` is among the last streams closed (frames for it may still
  // be on their way).
  bool RecentlyClosed(int32_t id) const;

  H2Events& events_;
  nghttp2_session* session_ = nullptr;
  H2Limits limits_;
  std::unordered_map<int32_t, Stream> streams_;
  Budget resets_, control_;
  H2Abuse abuse_ = H2Abuse::kNone;
  int64_t goaway_sent_ = -1;
  int error_ = 0;
  size_t memory_ = 0;
  std::vector<nghttp2_nv> nva_;         // a response's header list as submitted (reused)
  int32_t highest_stream_ = 0;          // the highest stream id the client used
  std::array<int32_t, 256> closed_{};   // the last streams closed, a ring
  size_t closed_next_ = 0;
};

}  // namespace webtier::balancer
