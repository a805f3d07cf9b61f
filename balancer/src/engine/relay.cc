// Relaying a member's response to the client (see relay.h).
#include "engine/relay.h"

#include <algorithm>
#include <span>
#include <vector>

#include "webtier/balancer/http/http_rules.h"
#include "webtier/common/log.h"

namespace webtier::balancer {

namespace {

constexpr const char* kComponent = "proxy";
constexpr size_t kBufferBytes = RelayBuffers::kBytes;

bool HasNoBody(int status, bool head) { return head || (status >= 100 && status < 200) || status == 204 || status == 304; }

void LogMidBodyFailure(const RelayedResponse& r, error_code ec) {
  const std::string& member = r.upstream.member->serverset().id;
  if (r.client.client_gone) {
    log::Debug(kComponent, "client gone mid-body").kv("member", member);
    return;
  }
  log::Warn(kComponent, "upstream failed mid-body").kv("member", member).kv("err", ec.message());
  if (r.metrics != nullptr) CountCutAnswer(*r.metrics, ec);
}

// The common case, a bodyless or Content-Length response: the head and the
// body bytes already read go out in one write, the rest of the body is
// copied as it comes.
awaitable<bool> RelaySized(RelayedResponse& r, bool bodyless, const Timeouts& timeouts, RelayBuffers& buffers) {
  ClientConnection& conn = r.client;
  UpstreamConnection& up = r.upstream;
  uint64_t left = bodyless ? 0 : *r.parser.content_length();
  const size_t first = static_cast<size_t>(std::min<uint64_t>(left, up.buffer.size()));
  const std::array<asio::const_buffer, 2> out{asio::buffer(conn.response_head),
                                              asio::buffer(up.buffer.data().data(), first)};
  conn.SetDeadline(timeouts.idle);
  const error_code wec = co_await WriteAll(conn.stream, out);
  conn.ClearDeadline();
  if (wec) {
    r.keep_alive = false;
    co_return false;
  }
  if (r.tap.capture != nullptr && first > 0)
    r.tap.capture->append(static_cast<const char*>(up.buffer.data().data()), first);
  up.buffer.consume(first);
  left -= first;
  bool ok = true;
  bool stray = false;  // the member sent more than its Content-Length
  if (left > 0) {
    auto buf = buffers.Take();
    while (left > 0) {
      conn.SetUpstreamDeadline(&up.stream, timeouts.request);
      // One byte more than the body still needs: from a member that keeps
      // to its framing the last read comes up short, which tells the reactor
      // the queue is empty (no probe when the connection is pooled). A byte
      // beyond the body is never forwarded, and the connection is not reused.
      auto [rec, got] = co_await ReadSome(
          up.stream, asio::buffer(buf.get(), static_cast<size_t>(std::min<uint64_t>(left + 1, kBufferBytes))));
      const bool timed_out = conn.upstream_timed_out;
      conn.ClearUpstream();
      if (rec || got == 0) {
        LogMidBodyFailure(r, timed_out ? error_code(beast::error::timeout)
                                       : rec ? rec : error_code(asio::error::eof));
        ok = false;
        break;
      }
      const size_t n = static_cast<size_t>(std::min<uint64_t>(got, left));
      stray = got > n;
      left -= n;
      if (r.tap.capture != nullptr) r.tap.capture->append(buf.get(), n);
      conn.SetDeadline(timeouts.idle);
      const error_code cwec = co_await WriteAll(conn.stream, asio::buffer(buf.get(), n));
      conn.ClearDeadline();
      if (cwec) {
        ok = false;
        break;
      }
    }
    buffers.Return(std::move(buf));
  }
  if (!ok) r.keep_alive = false;  // the client saw a truncated response: only closing tells it
  co_return ok && !stray && (!bodyless || (r.parser.is_done() && !AnnouncesForbiddenBody(r.parser.get())));
}

// Chunked or close-delimited: Beast decodes the member's framing into a
// buffer; each piece goes out as one chunk (or as is, to HTTP/1.0).
awaitable<bool> RelayUnsized(RelayedResponse& r, BodyFraming framing, const Timeouts& timeouts,
                             RelayBuffers& buffers) {
  ClientConnection& conn = r.client;
  UpstreamConnection& up = r.upstream;
  auto& rp = r.parser;
  auto& res = rp.get();
  auto buf = buffers.Take();
  bool ok = true;
  bool head_sent = false;
  // What the parser holds once a chunked answer is done, past these, is
  // its trailer section.
  HeaderFields header;
  if (rp.chunked() && framing == BodyFraming::kChunked) header.Snapshot(res);
  std::string last_chunk;  // the last chunk with the trailer section passed on
  for (;;) {
    size_t got = 0;
    if (!rp.is_done()) {
      conn.SetUpstreamDeadline(&up.stream, timeouts.request);
      auto [ec_raw, n] = co_await ReadBodyPiece(up, rp, buf.get(), kBufferBytes);
      conn.ClearUpstream();
      const error_code ec = conn.UpstreamError(ec_raw);
      if (ec) {
        LogMidBodyFailure(r, ec);
        ok = false;
        break;
      }
      got = n;
    }
    const bool last = rp.is_done();
    std::array<asio::const_buffer, 5> out;
    size_t count = 0;
    if (!head_sent) out[count++] = asio::buffer(conn.response_head);
    char size_line[20];
    if (framing == BodyFraming::kChunked) {
      if (got > 0) {
        for (const auto& part : Chunk(asio::buffer(buf.get(), got), size_line)) out[count++] = part;
      }
      if (last) {
        std::vector<TrailerField> trailers;
        if (rp.chunked()) ForwardedTrailers(res, header, trailers);
        if (trailers.empty()) {
          out[count++] = LastChunk();
        } else {
          AppendLastChunk(trailers, last_chunk);
          out[count++] = asio::buffer(last_chunk);
        }
      }
    } else if (got > 0) {
      out[count++] = asio::buffer(buf.get(), got);
    }
    conn.SetDeadline(timeouts.idle);
    const error_code wec = co_await WriteAll(conn.stream, std::span<const asio::const_buffer>(out.data(), count));
    conn.ClearDeadline();
    if (wec) {
      ok = false;
      break;
    }
    head_sent = true;
    if (last) break;
  }
  buffers.Return(std::move(buf));
  if (!ok) r.keep_alive = false;
  co_return ok && !rp.need_eof();
}

}  // namespace

// (relay.h) A response that cannot have a body (1xx, 204) but announces one: the
// member may well send it, so its connection is not kept. (HEAD and 304
// answers carry the length of the body they stand for; what such a member
// sends anyway is caught by the check before reuse.)
bool AnnouncesForbiddenBody(const http::response_header<>& res) {
  const int status = res.result_int();
  if (status != 204 && (status < 100 || status >= 200)) return false;
  if (res.count(http::field::transfer_encoding) != 0) return true;
  const auto length = res[http::field::content_length];
  return !length.empty() && length != "0";
}

awaitable<std::tuple<error_code, size_t>> ReadBodyPiece(UpstreamConnection& up,
                                                        http::response_parser<http::buffer_body>& parser, char* data,
                                                        size_t size) {
  auto& body = parser.get().body();
  body.data = data;
  body.size = size;
  parser.eager(true);  // data bytes never wait in the buffer (PendingBodyError)
  error_code ec = co_await ReadMessage(
      up.stream, up.buffer, parser, [&] { return parser.is_done() || body.size < size; }, nullptr,
      kMaxAnswerTrailerBytes);
  if (ec == http::error::need_buffer) ec = {};  // the piece is full
  co_return std::tuple{ec, size - body.size};
}

void CountCutAnswer(ProxyMetrics& metrics, error_code ec) {
  size_t reason = ProxyMetrics::kCutReset;
  if (ec == beast::error::timeout) reason = ProxyMetrics::kCutTimeout;
  else if (ec.category() == MakeErrorCode(BodyLimit::kChunkLineTooLong).category() ||
           (ec.category() == http::make_error_code(http::error::bad_chunk).category() &&
            ec != http::error::partial_message && ec != http::error::end_of_stream))
    reason = ProxyMetrics::kCutFraming;
  metrics.cut_answers[reason]->Increment();
}

std::unique_ptr<char[]> RelayBuffers::Take() {
  // Not zeroed: every byte is written before it is read.
  if (free_.empty()) return std::make_unique_for_overwrite<char[]>(kBytes);
  auto b = std::move(free_.back());
  free_.pop_back();
  return b;
}

void RelayBuffers::Return(std::unique_ptr<char[]> buffer) {
  // Enough for every stream of a few HTTP/2 connections relaying at once.
  if (free_.size() < 256) free_.push_back(std::move(buffer));
}

// Not a coroutine itself: it writes the head and hands back the coroutine
// that sends it, so relaying costs no extra coroutine frame.
awaitable<bool> RelayResponse(RelayedResponse& r, const Timeouts& timeouts, RelayBuffers& buffers) {
  auto& rp = r.parser;
  const bool bodyless = HasNoBody(rp.get().result_int(), r.head);
  const bool sized = bodyless || (!rp.chunked() && rp.content_length().has_value());
  BodyFraming framing = BodyFraming::kAsIs;
  if (!sized) {
    // Chunked or close-delimited: re-chunk for an HTTP/1.1 client; an
    // HTTP/1.0 client gets the plain body and the end of the connection.
    if (r.client_version >= 11) {
      framing = BodyFraming::kChunked;
    } else {
      framing = BodyFraming::kCloseDelimited;
      r.keep_alive = false;
    }
  }
  SerializeResponseHead(rp.get(), r.client_version, r.keep_alive, framing, r.request_id, r.client.response_head,
                        framing == BodyFraming::kChunked ? r.codings : std::string_view());
  if (!r.tap.cache_status.empty()) {  // one more line before the head's end
    std::string& head = r.client.response_head;
    head.insert(head.size() - 2, "Cache-Status: ");
    head.insert(head.size() - 2, r.tap.cache_status);
    head.insert(head.size() - 2, "\r\n");
  }
  if (sized) return RelaySized(r, bodyless, timeouts, buffers);
  return RelayUnsized(r, framing, timeouts, buffers);
}

}  // namespace webtier::balancer
