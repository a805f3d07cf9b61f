// An HTTP/2 client connection (see h2_session.h).
#include "engine/h2_session.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>

#include "engine/client_session.h"
#include "engine/exchange.h"
#include "engine/tunnel.h"
#include "webtier/balancer/http/http_rules.h"
#include "webtier/balancer/telemetry/access_log.h"
#include "webtier/common/http_syntax.h"
#include "webtier/common/log.h"

namespace webtier::balancer {

namespace {

using namespace asio::experimental::awaitable_operators;

constexpr const char* kComponent = "h2";
constexpr size_t kReadBytes = 16 * 1024;
constexpr size_t kWriteBytes = 64 * 1024;  // gathered from the codec per write
// A stream's window: more than kBufferedBodyBytes, so a body that size can
// arrive before anything is passed on.
constexpr int32_t kStreamWindow = 128 * 1024;

// Waits until `timer` is cancelled (the pattern every wake-up here uses: the
// waiter checks its condition again, so a wake-up that comes while nobody
// waits is not needed).
awaitable<void> Wait(Timer& timer) {
  timer.expires_at(Clock::time_point::max());
  co_await timer.async_wait(kUse);
}

H2Limits LimitsOf(const Config& config) {
  H2Limits limits;
  limits.max_streams = static_cast<uint32_t>(config.h2_max_streams);
  limits.max_header_bytes = config.max_header_bytes;
  limits.max_header_fields = config.max_header_fields;
  limits.stream_window = kStreamWindow;
  return limits;
}

// The request's Content-Length (nghttp2 checked it is one number, and that
// the DATA frames add up to it).
std::optional<uint64_t> ContentLength(const http::request<http::string_body>& req) {
  const auto value = req[http::field::content_length];
  if (value.empty()) return std::nullopt;
  uint64_t n = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
  if (ec != std::errc() || end != value.data() + value.size()) return std::nullopt;
  return n;
}

bool HasNoBody(int status, bool head) { return head || (status >= 100 && status < 200) || status == 204 || status == 304; }

}  // namespace

H2Stream::H2Stream(H2Session& session, int32_t id, ClientStream& client, const Config& config)
    : session(session),
      id(id),
      conn(client),
      head(config.max_header_fields, config.max_header_bytes),
      wake(client.get_executor()) {
  conn.h2 = this;
  conn.idle = false;
}

void H2Stream::Release(size_t n) {
  n = std::min(n, unconsumed);
  if (n == 0) return;
  unconsumed -= n;
  session.codec().Consume(id, n);
  session.KickWriter();
}

H2Session::H2Session(WorkerContext& worker, ClientConnection& conn, const std::string& client_ip)
    : worker_(worker),
      conn_(conn),
      client_ip_(client_ip),
      codec_(*this, LimitsOf(worker.config)),
      write_wake_(conn.stream.get_executor()),
      done_wake_(conn.stream.get_executor()) {}

H2Session::~H2Session() {
  conn_.h2_session = nullptr;
  conn_.ClearDeadline();
}

awaitable<bool> H2Session::Run(beast::flat_buffer& buffer) {
  conn_.h2_session = this;
  conn_.idle = false;
  writer_running_ = true;
  asio::co_spawn(conn_.stream.get_executor(), Writer(), asio::detached);
  if (worker_.draining()) Drain();
  bool ok = true;
  for (;;) {
    if (buffer.size() > 0) {
      ok = codec_.Receive(static_cast<const uint8_t*>(buffer.data().data()), buffer.size());
      buffer.consume(buffer.size());
      KickWriter();
    }
    if (!ok || ending_ || !codec_.WantRead()) break;
    UpdateDeadline();
    auto [ec, n] = co_await ReadSomeEager(conn_.stream, buffer.prepare(kReadBytes));
    buffer.commit(n);
    if (!ec) continue;
    client_left_ = !conn_.timed_out && ec != asio::error::operation_aborted;
    // The idle (or header) timeout while no stream is open: a GOAWAY first.
    if (conn_.timed_out && read_deadline_ != Clock::time_point::max() && codec_.open_streams() == 0) {
      codec_.GoAway();
      worker_.metrics.h2_goaway_graceful.Increment();
    }
    break;
  }
  read_deadline_ = Clock::time_point::max();
  UpdateDeadline();
  ending_ = true;
  if (!ok) {
    const H2Abuse abuse = codec_.abuse();
    if (abuse != H2Abuse::kNone) {
      worker_.metrics.h2_abuse[static_cast<size_t>(abuse) - 1]->Increment();
      log::Warn(kComponent, "connection ended for abuse").kv("client", client_ip_).kv("kind", H2AbuseName(abuse));
    } else if (codec_.error() != NGHTTP2_ERR_BAD_CLIENT_MAGIC) {
      worker_.metrics.h2_abuse[kH2AbuseKinds - 1]->Increment();
      log::Warn(kComponent, "connection ended: protocol error")
          .kv("client", client_ip_)
          .kv("err", nghttp2_strerror(codec_.error()));
    }
  }
  if (codec_.goaway_sent() > 0 || (!ok && codec_.error() != NGHTTP2_ERR_BAD_CLIENT_MAGIC))
    worker_.metrics.h2_goaway_error.Increment();
  // Whatever still runs is abandoned: its member operation is cut short.
  for (auto& [id, s] : streams_) {
    if (!s->running) continue;
    s->conn.client_gone = true;
    error_code ignored;
    if (s->conn.upstream != nullptr) s->conn.upstream->cancel(ignored);
    s->Notify();
  }
  KickWriter();
  while (running_ > 0 || writer_running_) co_await Wait(done_wake_);
  co_return !client_left_ && !write_failed_;
}

void H2Session::Drain() {
  if (ending_) return;
  const auto now = Clock::now();
  if (!draining_) {
    draining_ = true;
    drain_start_ = now;
    codec_.ShutdownNotice();
    KickWriter();
    UpdateDeadline();
    return;
  }
  // One round trip later (the worker repeats the drain every 50 ms): the
  // streams the client opened meanwhile are still answered.
  if (!goaway_ && now - drain_start_ >= kDrainIdleGrace) {
    goaway_ = true;
    codec_.GoAway();
    worker_.metrics.h2_goaway_graceful.Increment();
    KickWriter();
  }
}

void H2Session::UpdateDeadline() {
  if (!ending_) {
    if (codec_.open_streams() == 0 && running_ == 0) {
      auto wait = first_ ? worker_.timeouts.header : worker_.timeouts.idle;
      if (draining_) wait = std::min<std::chrono::milliseconds>(wait, kDrainIdleGrace);
      if (read_deadline_ == Clock::time_point::max()) read_deadline_ = Clock::now() + wait;
    } else {
      read_deadline_ = Clock::time_point::max();
    }
  }
  const auto deadline = std::min(read_deadline_, write_deadline_);
  if (deadline != conn_.deadline) {
    conn_.deadline = deadline;
    conn_.timed_out = false;
  }
}

awaitable<void> H2Session::Writer() {
  for (;;) {
    write_buffer_.clear();
    while (write_buffer_.size() < kWriteBytes) {
      const std::string_view bytes = codec_.Send();
      if (bytes.empty()) break;
      write_buffer_.append(bytes);
    }
    if (write_buffer_.empty()) {
      if (!codec_.WantRead() && !codec_.WantWrite()) {
        // Finished (a GOAWAY sent and its streams done): the reader stops too.
        if (!ending_) {
          ending_ = true;
          error_code ignored;
          conn_.stream.cancel(ignored);
        }
        break;
      }
      if (ending_) break;
      co_await Wait(write_wake_);
      continue;
    }
    write_deadline_ = Clock::now() + worker_.timeouts.idle;
    UpdateDeadline();
    const error_code ec = co_await WriteAllEager(conn_.stream, asio::buffer(write_buffer_));
    write_deadline_ = Clock::time_point::max();
    UpdateDeadline();
    if (ec) {  // the client is gone or too slow: everything ends
      write_failed_ = true;
      if (!ending_) {
        ending_ = true;
        error_code ignored;
        conn_.stream.cancel(ignored);
      }
      break;
    }
  }
  writer_running_ = false;
  done_wake_.cancel();
}

H2Stream* H2Session::Find(int32_t id) {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second.get();
}

void H2Session::Forget(int32_t id) {
  streams_.erase(id);
  UpdateDeadline();
}

H2RequestHead* H2Session::OnRequestBegin(int32_t id) {
  if (ending_) return nullptr;
  auto s = std::make_shared<H2Stream>(*this, id, conn_.stream, worker_.config);
  // The connection's first stream gets a member connection of its own, as
  // an HTTP/1.1 connection's first request does.
  s->conn.requests = ++requests_;
  if (worker_.access_log != nullptr) s->time = std::chrono::system_clock::now();
  H2RequestHead* head = &s->head;
  streams_.emplace(id, std::move(s));
  UpdateDeadline();
  return head;
}

void H2Session::OnRequestHead(int32_t id, bool end_stream) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  it->second->body_done = end_stream;
  first_ = false;
  asio::co_spawn(conn_.stream.get_executor(), Serve(it->second), asio::detached);
}

void H2Session::OnRequestData(int32_t id, std::string_view data) {
  H2Stream* s = Find(id);
  if (s == nullptr || s->discard) {  // nobody takes it: the window opens again at once
    codec_.Consume(id, data.size());
    return;
  }
  s->body_received += data.size();
  s->unconsumed += data.size();
  if (s->body_received > worker_.config.max_body_bytes && !s->tunnel) s->body_too_large = true;
  else s->body_in.append(data);
  s->Notify();
}

void H2Session::OnRequestEnd(int32_t id) {
  if (H2Stream* s = Find(id)) {
    s->body_done = true;
    s->Notify();
  }
}

void H2Session::OnStreamClose(int32_t id, uint32_t code) {
  H2Stream* s = Find(id);
  if (s == nullptr) return;
  s->closed = true;
  s->reset_code = code;
  s->Release(s->unconsumed);
  s->body_in.clear();
  if (!s->running) {
    Forget(id);
    return;
  }
  if (code != NGHTTP2_NO_ERROR || !s->out_done) {
    // Reset (or cut off) before its answer was all sent: abandon the exchange.
    s->conn.client_gone = true;
    error_code ignored;
    if (s->conn.upstream != nullptr) s->conn.upstream->cancel(ignored);
  }
  s->Notify();
}

bool H2Session::ResponseFailed(int32_t id) {
  const H2Stream* s = Find(id);
  return s != nullptr && s->out_failed;
}

const std::vector<H2Trailer>* H2Session::ResponseTrailers(int32_t id) {
  const H2Stream* s = Find(id);
  return s == nullptr ? nullptr : &s->trailers;
}

size_t H2Session::ReadResponseBody(int32_t id, uint8_t* out, size_t length, bool* eof) {
  H2Stream* s = Find(id);
  if (s == nullptr) {
    *eof = true;
    return 0;
  }
  const size_t n = std::min(length, s->out.size() - s->out_sent);
  if (n > 0) std::memcpy(out, s->out.data() + s->out_sent, n);
  s->out_sent += n;
  s->bytes_out += n;
  if (s->out_sent == s->out.size()) {
    s->out.clear();
    s->out_sent = 0;
    *eof = s->out_done;
  }
  if (n > 0) s->Notify();  // room for more of the member's answer
  return n;
}

void H2Session::Answer(H2Stream& s, int status, std::string_view error) {
  s.discard = true;
  s.Release(s.unconsumed);
  s.body_in.clear();
  if (s.answered || s.closed) return;
  s.answered = true;
  s.out = ErrorBody(status, error);
  s.out_sent = 0;
  s.out_done = true;
  const std::string length = std::to_string(s.out.size());
  std::vector<H2Field>& fields = fields_;
  fields.clear();
  fields.emplace_back("content-type", "application/json");
  fields.emplace_back("content-length", length);
  if (status == 405) fields.emplace_back("allow", kAllowedMethods);
  codec_.Respond(s.id, status, fields, true);
  KickWriter();
}

awaitable<bool> H2Session::AwaitBody(H2Stream& s) {
  const auto deadline = s.start + std::chrono::milliseconds(worker_.config.body_timeout_ms);
  while (!s.body_done && s.body_in.size() < kBufferedBodyBytes && !s.closed && !s.body_too_large) {
    s.conn.SetDeadline(worker_.timeouts.request, deadline);
    co_await Wait(s.wake);
    s.conn.ClearDeadline();
    if (s.conn.timed_out && !s.closed) {
      const bool late = Clock::now() >= deadline;
      Reject(s, RequestError{408, late ? Rejection::kBodyTimeout : Rejection::kHeaderTimeout,
                             late ? "request body not complete in time" : "request body timed out"});
      co_return false;
    }
  }
  if (s.body_too_large && !s.closed) Reject(s, RequestError{413, Rejection::kBodyTooLarge, "request body too large"});
  co_return !s.closed && !s.answered;
}

void H2Session::Reject(H2Stream& s, const RequestError& error) {
  log::Warn(kComponent, "request rejected")
      .kv("status", error.status)
      .kv("reason", RejectionName(error.reason))
      .kv("detail", error.message)
      .kv("client", client_ip_);
  worker_.metrics.rejected_requests[static_cast<size_t>(error.reason)]->Increment();
  s.flags |= RejectionFlag(error.reason);
  s.status = error.status;
  Answer(s, error.status, error.message);
}

awaitable<void> H2Session::Serve(std::shared_ptr<H2Stream> held) {
  H2Stream& s = *held;
  s.running = true;
  ++running_;
  // Registered with the worker while it runs: the watchdog enforces its deadlines.
  auto& clients = worker_.clients;
  struct Registration {
    std::list<ClientConnection*>& list;
    std::list<ClientConnection*>::iterator at;
    ~Registration() { list.erase(at); }
  } registration{clients, clients.insert(clients.end(), &s.conn)};
  std::optional<Exchange> exchange;
  std::optional<StreamedBody> streamed;
  std::optional<RequestError> refused = s.head.Build(s.request);
  // A WebSocket stream: the member gets an HTTP/1.1 Upgrade request, which
  // needs a key; its DATA is the tunnel's, not a body to wait for.
  s.tunnel = !refused && s.head.extended_connect();
  if (s.tunnel) s.request.set(http::field::sec_websocket_key, NewWebSocketKey());
  if (!refused) refused = RefuseRequest(s.request, worker_, conn_.stream.tls());
  if (!refused) {
    if (const auto length = ContentLength(s.request); length && *length > worker_.config.max_body_bytes)
      refused = RequestError{413, Rejection::kBodyTooLarge, "request body too large"};
  }
  if (refused) {
    Reject(s, *refused);
  } else if (s.tunnel || co_await AwaitBody(s)) {
    if (!s.tunnel) {
      s.request.body() = std::move(s.body_in);
      s.body_in.clear();
    }
    if (!s.body_done && !s.tunnel) {
      streamed.emplace(StreamedBody{nullptr, nullptr, ContentLength(s.request),
                                    s.start + std::chrono::milliseconds(worker_.config.body_timeout_ms), 0, {}});
    }
    exchange.emplace(worker_, s.conn, s.request, client_ip_, streamed ? &*streamed : nullptr, true);
    worker_.counters.active_requests.fetch_add(1, std::memory_order_relaxed);
    ExchangeOutcome outcome = co_await exchange->Run();
    worker_.counters.active_requests.fetch_sub(1, std::memory_order_relaxed);
    s.status = outcome.status;
    if (!outcome.error.empty()) Answer(s, outcome.status, outcome.error);
    if (outcome.tunnel) co_await Tunnel(s, *outcome.tunnel);
    if (streamed && streamed->client_error && !s.closed) {
      if (const std::optional<RequestError> error = ClassifyRequestError(streamed->client_error, RequestPart::kBody))
        Reject(s, *error);
    }
    if (s.closed && !s.answered) s.flags |= kClientGone;
    s.discard = true;
    s.Release(s.unconsumed);
  }
  if (!s.answered && !s.closed) {  // nothing to say (the client left mid-exchange)
    codec_.Reset(s.id, NGHTTP2_INTERNAL_ERROR);
    KickWriter();
  }
  Finish(s, exchange ? &*exchange : nullptr);
  s.running = false;
  --running_;
  if (s.closed) Forget(s.id);
  else UpdateDeadline();
  if (running_ == 0) done_wake_.cancel();
}

void H2Session::Finish(H2Stream& s, const Exchange* exchange) {
  ProxyMetrics& metrics = worker_.metrics;
  metrics.h2_streams.Increment();
  const int status = s.answered ? s.status : 0;
  if (status != 0) metrics.RequestsWithCode(status, Protocol::kHttp2).Increment();
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - s.start).count();
  metrics.request_duration.Observe(ms / 1000);
  const uint64_t in = s.head.bytes() + s.body_received;
  if (status != 0) CountClientAnswer(worker_, status, in, s.bytes_out, ms, conn_.stream.tls(), Protocol::kHttp2, exchange);
  const http::request_header<>* head = s.request.method_string().empty() ? nullptr : &s.request;
  if (worker_.spans != nullptr) ExportRequestSpan(worker_, head, "2", s.start, client_ip_, status, s.flags, exchange);
  if (worker_.access_log == nullptr) return;
  AccessRecord r;
  r.time = s.time;
  r.client = client_ip_;
  r.protocol = "HTTP/2.0";
  r.tls = conn_.stream.tls();
  r.status = status;
  r.bytes_in = in;
  r.bytes_out = s.bytes_out;
  r.duration_ms = ms;
  r.flags = s.flags;
  if (worker_.draining()) r.flags |= kDraining;
  if (!s.request.method_string().empty()) DescribeRequest(s.request, r);
  if (exchange != nullptr) DescribeExchange(*exchange, r);
  worker_.access_log->Log(worker_.access_shard, r);
}

namespace {

// A member that failed while its answer was relayed (or a client that left).
void LogMidBodyFailure(const H2Stream& s, const UpstreamConnection& up, error_code ec) {
  if (s.conn.client_gone) {
    log::Debug(kComponent, "client gone mid-body").kv("member", up.member->serverset().id);
    return;
  }
  log::Warn("proxy", "upstream failed mid-body").kv("member", up.member->serverset().id).kv("err", ec.message());
  CountCutAnswer(s.session.worker().metrics, ec);
}

// The relay of an answer's body is over: all of it is queued (`whole`), or
// the stream is reset once what came is sent (a truncated answer can only
// be told that way).
void EndAnswer(H2Stream& s, bool whole) {
  (whole ? s.out_done : s.out_failed) = true;
  s.session.codec().Resume(s.id);
  s.session.KickWriter();
}

// A Content-Length body, the common case: taken from the member connection's
// buffer (what came with the head) and then its socket straight into the
// stream, as an HTTP/1.1 client's is (relay.cc), with no parser round and no
// relay buffer. The answer's headers are submitted. True when it went
// through whole.
awaitable<bool> RelaySizedToStream(H2Stream& s, UpstreamConnection& up, uint64_t length, std::string* capture) {
  H2Session& session = s.session;
  const Timeouts& timeouts = session.worker().timeouts;
  uint64_t left = length;
  bool ok = true;
  for (;;) {
    const size_t have = static_cast<size_t>(std::min<uint64_t>(left, up.buffer.size()));
    if (have > 0) {
      s.out.append(static_cast<const char*>(up.buffer.data().data()), have);
      if (capture != nullptr) capture->append(static_cast<const char*>(up.buffer.data().data()), have);
      up.buffer.consume(have);
      left -= have;
      session.codec().Resume(s.id);
      session.KickWriter();
    }
    if (left == 0) break;
    // Read the member only while the client takes what was read.
    while (s.out.size() - s.out_sent >= kStreamOutBytes && !s.closed) {
      s.conn.SetDeadline(timeouts.idle);
      co_await Wait(s.wake);
      s.conn.ClearDeadline();
      if (s.conn.timed_out) break;
    }
    if (s.closed || s.conn.timed_out) {
      ok = false;
      break;
    }
    s.conn.SetUpstreamDeadline(&up.stream, timeouts.request);
    // One byte more than the body needs, as the HTTP/1.1 relay does: a
    // member that keeps to its framing leaves the last read short; a stray
    // byte stays in the buffer, which keeps the connection out of the pool.
    auto [raw, n] = co_await ReadSome(
        up.stream, up.buffer.prepare(static_cast<size_t>(std::min<uint64_t>(left + 1, RelayBuffers::kBytes))));
    const error_code ec = s.conn.UpstreamError(raw);
    s.conn.ClearUpstream();
    up.buffer.commit(n);
    if (ec || n == 0) {
      LogMidBodyFailure(s, up, ec ? ec : error_code(asio::error::eof));
      ok = false;
      break;
    }
  }
  EndAnswer(s, ok);
  co_return ok;
}

}  // namespace

void AnswerStreamFromMemory(H2Stream& s, int status, const std::vector<H2Field>& fields, std::string_view body) {
  if (s.closed) return;
  s.answered = true;
  s.status = status;
  s.out.assign(body);
  s.out_sent = 0;
  s.out_done = true;
  s.session.codec().Respond(s.id, status, fields, !body.empty());
  s.session.KickWriter();
}

awaitable<bool> RelayResponseToStream(H2Stream& s, UpstreamConnection& up,
                                      http::response_parser<http::buffer_body>& parser, bool head_request,
                                      std::string_view request_id, RelayBuffers& buffers, const EdgeTap& tap) {
  H2Session& session = s.session;
  const Timeouts& timeouts = session.worker().timeouts;
  auto& res = parser.get();
  const int code = res.result_int();
  const bool bodyless = HasNoBody(code, head_request);
  const bool keep_length = bodyless || (!parser.chunked() && parser.content_length().has_value());
  std::vector<H2Field>& fields = session.fields();
  H2ResponseFields(res, keep_length, request_id, fields);
  if (!tap.cache_status.empty()) fields.emplace_back("cache-status", tap.cache_status);
  if (s.closed) co_return false;
  s.answered = true;
  s.status = code;
  session.codec().Respond(s.id, code, fields, !bodyless);
  session.KickWriter();
  if (bodyless) {
    s.out_done = true;
    co_return parser.is_done() && !AnnouncesForbiddenBody(res);
  }
  if (!parser.chunked() && parser.content_length()) co_return co_await RelaySizedToStream(s, up, *parser.content_length(), tap.capture);
  auto buf = buffers.Take();
  bool ok = true;
  // What the parser holds once a chunked answer is done, past these, is
  // its trailer section.
  HeaderFields header;
  if (parser.chunked()) header.Snapshot(res);
  while (!parser.is_done()) {
    // Read the member only while the client takes what was read.
    while (s.out.size() - s.out_sent >= kStreamOutBytes && !s.closed) {
      s.conn.SetDeadline(timeouts.idle);
      co_await Wait(s.wake);
      s.conn.ClearDeadline();
      if (s.conn.timed_out) break;
    }
    if (s.closed || s.conn.timed_out) {
      ok = false;
      break;
    }
    s.conn.SetUpstreamDeadline(&up.stream, timeouts.request);
    auto [raw, got] = co_await ReadBodyPiece(up, parser, buf.get(), RelayBuffers::kBytes);
    s.conn.ClearUpstream();
    const error_code ec = s.conn.UpstreamError(raw);
    if (ec) {
      LogMidBodyFailure(s, up, ec);
      ok = false;
      break;
    }
    if (got == 0) continue;  // the end: only the last chunk and trailer came
    s.out.append(buf.get(), got);
    session.codec().Resume(s.id);
    session.KickWriter();
  }
  buffers.Return(std::move(buf));
  if (ok && parser.chunked()) {
    std::vector<TrailerField> trailers;
    ForwardedTrailers(res, header, trailers);
    for (const auto& [name, value] : trailers) s.trailers.emplace_back(http_syntax::LowerCopy(name), value);
  }
  EndAnswer(s, ok);
  co_return ok && !parser.need_eof();
}

awaitable<error_code> StreamBodyFromStream(H2Stream& s, UpstreamConnection& up, bool chunked,
                                           Clock::time_point deadline, error_code& client_error) {
  const Timeouts& timeouts = s.session.worker().timeouts;
  auto write = [&](const auto& buffers) -> awaitable<error_code> {
    s.conn.SetUpstreamDeadline(&up.stream, timeouts.request);
    const error_code ec = co_await WriteAll(up.stream, buffers);
    s.conn.ClearUpstream();
    co_return ec ? s.conn.UpstreamError(ec) : ec;
  };
  // The first part went with the request's head: the client may send as much more.
  s.Release(s.unconsumed - s.body_in.size());
  std::string part;
  for (;;) {
    while (s.body_in.empty() && !s.body_done && !s.closed && !s.body_too_large) {
      s.conn.SetDeadline(timeouts.request, deadline);
      co_await Wait(s.wake);
      s.conn.ClearDeadline();
      if (s.conn.timed_out && !s.closed) {
        client_error = Clock::now() >= deadline ? MakeErrorCode(BodyLimit::kBodyTimeout) : error_code(beast::error::timeout);
        co_return error_code{};
      }
    }
    if (s.body_too_large) {
      client_error = http::error::body_limit;
      co_return error_code{};
    }
    if (s.body_in.empty()) {
      if (s.body_done) break;
      client_error = asio::error::connection_reset;  // the stream was reset
      co_return error_code{};
    }
    part.clear();
    part.swap(s.body_in);
    char size_line[20];
    const error_code ec =
        chunked ? co_await write(Chunk(asio::buffer(part), size_line)) : co_await write(asio::buffer(part));
    if (ec) co_return ec;
    s.Release(part.size());
  }
  if (chunked) co_return co_await write(LastChunk());
  co_return error_code{};
}

awaitable<void> H2Session::Tunnel(H2Stream& s, UpstreamConnection& up) {
  ProxyMetrics& metrics = worker_.metrics;
  metrics.upgraded_connections.Increment();
  Timer room(conn_.stream.get_executor());
  s.room = &room;
  s.conn.upstream = &up.stream;  // cancelled when the stream is reset or the connection ends
  s.conn.upstream_deadline = Clock::time_point::max();
  TunnelActivity activity;
  bool member_ended = false;  // the member closed its side cleanly
  // Member to client: DATA while the stream holds less than
  // kStreamOutBytes the client has not taken (what it sent after its 101 first).
  auto to_client = [&]() -> awaitable<void> {
    auto buf = worker_.relay_buffers.Take();
    for (;;) {
      if (up.buffer.size() > 0) {
        s.out.append(static_cast<const char*>(up.buffer.data().data()), up.buffer.size());
        up.buffer.consume(up.buffer.size());
        codec_.Resume(s.id);
        KickWriter();
      }
      while (s.out.size() - s.out_sent >= kStreamOutBytes && !s.closed && !s.conn.client_gone) co_await Wait(room);
      if (s.closed || s.conn.client_gone) break;
      auto [ec, n] = co_await up.stream.async_read_some(asio::buffer(buf.get(), RelayBuffers::kBytes), kUse);
      if (n > 0) {
        activity.last = Clock::now();
        s.out.append(buf.get(), n);
        codec_.Resume(s.id);
        KickWriter();
      }
      if (ec) {
        member_ended = ec == asio::error::eof;
        break;
      }
    }
    worker_.relay_buffers.Return(std::move(buf));
  };
  // Client to member: DATA as it comes, given back to the client's window
  // once written; its END_STREAM half-closes the member's connection.
  auto to_member = [&]() -> awaitable<void> {
    std::string part;
    bool half_closed = false;
    for (;;) {
      // (Once half-closed, it waits here until the other half ends the tunnel.)
      while (s.body_in.empty() && s.body_done == half_closed && !s.closed && !s.conn.client_gone)
        co_await Wait(s.wake);
      if (s.closed || s.conn.client_gone) break;  // reset, or the connection ended
      if (!s.body_in.empty()) {
        part.clear();
        part.swap(s.body_in);
        if (co_await WriteAll(up.stream, asio::buffer(part))) break;
        activity.last = Clock::now();
        s.Release(part.size());
        continue;
      }
      if (s.body_done && !half_closed) {
        error_code ignored;
        up.stream.shutdown(tcp::socket::shutdown_send, ignored);
        half_closed = true;
      }
    }
  };
  // The first half to finish (or the idle limit) ends the tunnel.
  co_await (to_client() || to_member() || IdleLimit(activity, worker_.timeouts.idle));
  s.conn.upstream = nullptr;
  s.room = nullptr;
  error_code ignored;
  up.stream.close(ignored);
  if (!s.closed && !s.conn.client_gone) {
    if (member_ended) {
      EndAnswer(s, true);  // END_STREAM once what the member sent is out
    } else {
      codec_.Reset(s.id, NGHTTP2_CONNECT_ERROR);
      KickWriter();
    }
  }
  metrics.upgraded_connections.Decrement();
  log::Debug(kComponent, "tunnel closed").kv("member", up.member->serverset().id);
}

void OpenStreamTunnel(H2Stream& s, const http::response_header<>& head, std::string_view request_id) {
  std::vector<H2Field>& fields = s.session.fields();
  H2ResponseFields(head, false, request_id, fields);
  std::erase_if(fields, [](const H2Field& f) { return f.first == "sec-websocket-accept"; });
  if (s.closed) return;
  s.answered = true;
  s.status = 200;
  s.session.codec().Respond(s.id, 200, fields, true);
  s.session.KickWriter();
}

void RelayInterimToStream(H2Stream& s, const http::response_header<>& head) {
  std::vector<H2Field>& fields = s.session.fields();
  H2ResponseFields(head, false, {}, fields);
  s.session.codec().Interim(s.id, head.result_int(), fields);
  s.session.KickWriter();
}

}  // namespace webtier::balancer
