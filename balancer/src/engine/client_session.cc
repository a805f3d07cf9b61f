// One client connection's requests (see client_session.h).
#include "engine/client_session.h"

#include <optional>

#include <boost/asio/write.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/write.hpp>

#include "engine/exchange.h"
#include "engine/h2_session.h"
#include "tls/tls_session.h"
#include "engine/tunnel.h"
#include "webtier/balancer/http/admin_path.h"
#include "webtier/balancer/http/http_rules.h"
#include "webtier/common/http_syntax.h"
#include "webtier/common/log.h"

namespace webtier::balancer {

namespace {

constexpr const char* kComponent = "proxy";

// Whether a TLS client chose h2 in ALPN.
bool NegotiatedH2(ClientStream& stream) {
  const unsigned char* proto = nullptr;
  unsigned int length = 0;
  SSL_get0_alpn_selected(stream.tls_stream().native_handle(), &proto, &length);
  return length == 2 && proto[0] == 'h' && proto[1] == '2';
}

// Whether a plain connection's first bytes are (the start of) the HTTP/2
// connection preface: h2c with prior knowledge. "PRI" is no HTTP/1.1 method
// the balancer forwards, so the first bytes decide; the codec checks the rest.
bool StartsH2Preface(const beast::flat_buffer& buffer) {
  const std::string_view got(static_cast<const char*>(buffer.data().data()), buffer.size());
  const size_t n = std::min(got.size(), kH2Preface.size());
  return n >= 3 && got.substr(0, n) == kH2Preface.substr(0, n);
}


}  // namespace

std::string ErrorBody(int status, std::string_view error) {
  std::string body = "{\"error\":\"";
  body.append(error);
  body.append("\",\"status\":");
  body.append(std::to_string(status));
  body.append("}\n");
  return body;
}

uint32_t RejectionFlag(Rejection reason) {
  switch (reason) {
    case Rejection::kBadRequest: return kBadRequest;
    case Rejection::kSmuggling:
    case Rejection::kUnsupportedCoding: return kFramingRefused;
    case Rejection::kAdminPath: return kAdminPath;
    case Rejection::kMisdirected: return kMisdirected;
    case Rejection::kHeaderTooLarge:
    case Rejection::kBodyTooLarge:
    case Rejection::kHeaderTimeout:
    case Rejection::kTooManyFields:
    case Rejection::kChunkLine:
    case Rejection::kTrailerTooLarge:
    case Rejection::kBodyTimeout:
    case Rejection::kCount: return kLimit;
  }
  return kLimit;
}


ClientSession::ClientSession(WorkerContext& worker, tcp::socket socket, const tcp::endpoint& peer,
                             std::shared_ptr<ssl::context> tls)
    : worker_(worker),
      clients_(worker.clients),
      counters_(worker.counters),
      metrics_(worker.metrics),
      stream_(std::move(socket), std::move(tls)),
      conn_(stream_) {
  error_code ec;
  tcp::socket& s = conn_.stream.socket();
  s.set_option(tcp::no_delay(true), ec);  // (ClientStream made it non-blocking)
  registered_ = clients_.insert(clients_.end(), &conn_);
  client_ip_ = peer.address().to_string();
}

ClientSession::~ClientSession() {
  clients_.erase(registered_);
  counters_.open_connections.fetch_sub(1, std::memory_order_relaxed);
  metrics_.client_connections.Decrement();
}

awaitable<void> ClientSession::Run() {
  beast::flat_buffer buffer;
  request_.buffer = &buffer;
  Next next = Next::kClose;
  try {
    if (conn_.stream.tls() && !co_await TlsHandshake(conn_, worker_.timeouts.header, metrics_, client_ip_)) {
      error_code ec;
      conn_.stream.close(ec);
      co_return;
    }
    const bool h2 = conn_.stream.tls() && NegotiatedH2(conn_.stream);
    for (bool first = true;; first = false) {
      if (h2) {
        next = co_await ServeHttp2(buffer);
        break;
      }
      next = co_await AwaitRequest(buffer, first);
      if (next != Next::kRequest) break;
      if (first && worker_.config.h2c && !conn_.stream.tls() && StartsH2Preface(buffer)) {
        next = co_await ServeHttp2(buffer);
        break;
      }
      http::request_parser<http::string_body> parser;
      next = co_await ReadHead(buffer, parser);
      if (next == Next::kRequest && !parser.is_done()) next = co_await ReadBody(buffer, parser);
      if (next == Next::kRequest) next = co_await Forward(buffer, parser);
      if (next != Next::kRequest) break;
    }
  } catch (const std::exception& e) {
    log::Error(kComponent, "connection failed").kv("client", client_ip_).kv("err", e.what());
    next = Next::kClose;
  }
  if (next == Next::kLinger) {
    co_await LingeringClose();
    co_return;
  }
  if (next == Next::kGoodbye && conn_.stream.tls()) co_await TlsShutdown(conn_);
  error_code ec;
  conn_.stream.shutdown(tcp::socket::shutdown_send, ec);
  conn_.stream.close(ec);
}

awaitable<ClientSession::Next> ClientSession::ServeHttp2(beast::flat_buffer& buffer) {
  conn_.idle = false;
  metrics_.h2_connections.Increment();
  bool linger = false;
  {
    H2Session session(worker_, conn_, client_ip_);
    linger = co_await session.Run(buffer);
  }
  metrics_.h2_connections.Decrement();
  co_return linger ? Next::kLinger : Next::kClose;
}

awaitable<ClientSession::Next> ClientSession::AwaitRequest(beast::flat_buffer& buffer, bool first) {
  conn_.idle = true;
  conn_.idle_since = Clock::now();
  request_.read_mark = conn_.stream.bytes_read - buffer.size();
  request_.written_mark = conn_.stream.bytes_written;
  request_.head = nullptr;
  if (buffer.size() == 0) {
    // Waiting for the next request: the idle timeout applies (the header
    // timeout for a fresh connection, which has sent nothing yet).
    // A drain gives it kDrainIdleGrace (its next request is answered, with
    // Connection: close) rather than closing under a request on its way.
    const auto wait = first ? worker_.timeouts.header : worker_.timeouts.idle;
    conn_.SetDeadline(worker_.draining() ? std::min<std::chrono::milliseconds>(wait, kDrainIdleGrace) : wait);
    auto [ec, n] = co_await ReadSome(conn_.stream, buffer.prepare(8192));
    conn_.ClearDeadline();
    // The client closed, or the drain's grace ended; a timed-out client gets no goodbye.
    if (ec) co_return conn_.timed_out && !worker_.draining() ? Next::kClose : Next::kGoodbye;
    buffer.commit(n);
  }
  conn_.idle = false;
  request_.start = Clock::now();
  if (worker_.access_log != nullptr) request_.time = std::chrono::system_clock::now();
  co_return Next::kRequest;
}

awaitable<ClientSession::Next> ClientSession::ReadHead(beast::flat_buffer& buffer, RequestParser& parser) {
  parser.header_limit(worker_.config.max_header_bytes);
  parser.body_limit(worker_.config.max_body_bytes);
  conn_.SetDeadline(worker_.timeouts.header);
  const error_code ec = conn_.ClientError(co_await ReadMessage(conn_.stream, buffer, parser, HeaderIn(parser)));
  conn_.ClearDeadline();
  if (ec) co_return co_await RejectUnreadable(ec, RequestPart::kHeader) ? Next::kLinger : Next::kClose;
  request_.head = &parser.get();
  if (const std::optional<RequestError> refused = RefuseRequest(parser.get(), worker_, conn_.stream.tls())) {
    co_await Reject(refused->status, refused->reason, refused->message);
    co_return Next::kLinger;
  }
  ++conn_.requests;
  // Only a chunked body can carry a trailer.
  if (parser.chunked()) header_fields_.Snapshot(parser.get());
  request_.body_deadline = Clock::now() + std::chrono::milliseconds(worker_.config.body_timeout_ms);
  co_return Next::kRequest;
}

std::optional<RequestError> RefuseRequest(http::request<http::string_body>& head, const WorkerContext& worker,
                                          bool tls) {
  if (const RequestCheck check = CheckRequestFraming(head, worker.config.max_header_fields); !check.ok())
    return RefusedRequest(check);
  ToOriginForm(head);
  if (!worker.hosts.empty()) {
    const auto host = head[http::field::host];
    if (!worker.hosts.Admits(std::string_view(host.data(), host.size()), tls))
      return RequestError{421, Rejection::kMisdirected, "this server does not serve that Host"};
  }
  if (IsAdminPath(std::string_view(head.target().data(), head.target().size())))
    return RequestError{404, Rejection::kAdminPath, "admin routes are served on the balancer's admin port only"};
  return std::nullopt;
}

awaitable<ClientSession::Next> ClientSession::ReadBody(beast::flat_buffer& buffer, RequestParser& parser) {
  // An HTTP/1.0 client's expectation is ignored (RFC 9110, 10.1.1).
  auto expect = parser.get()[http::field::expect];
  if (parser.get().version() >= 11 && http_syntax::EqualsIgnoreCase(expect, "100-continue")) {
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    conn_.SetDeadline(worker_.timeouts.idle);
    auto [wec, wn] = co_await asio::async_write(conn_.stream, asio::buffer(kContinue.data(), kContinue.size()), kUse);
    conn_.stream.bytes_written += wn;
    if (wec) co_return Next::kClose;
  }
  // A body up to kBufferedBodyBytes is read whole (so the request can be
  // retried); of a larger one, that much before the request leaves.
  conn_.SetDeadline(worker_.timeouts.request, request_.body_deadline);
  parser.eager(true);
  const error_code ec = conn_.ClientError(co_await ReadMessage(
      conn_.stream, buffer, parser,
      [&parser] { return parser.is_done() || parser.get().body().size() >= kBufferedBodyBytes; }, nullptr,
      worker_.config.max_header_bytes));
  conn_.ClearDeadline();
  if (!ec) co_return Next::kRequest;
  const bool late = ec == beast::error::timeout && Clock::now() >= request_.body_deadline;
  co_return co_await RejectUnreadable(late ? MakeErrorCode(BodyLimit::kBodyTimeout) : ec, RequestPart::kBody)
      ? Next::kLinger
      : Next::kClose;
}

awaitable<ClientSession::Next> ClientSession::Forward(beast::flat_buffer& buffer, RequestParser& parser) {
  // A body not yet whole is streamed to the member by the exchange, which
  // ends it with an empty last chunk: its trailer never leaves.
  std::optional<StreamedBody> streamed;
  if (!parser.is_done()) {
    std::optional<uint64_t> length;
    if (const auto l = parser.content_length()) length = *l;
    streamed.emplace(StreamedBody{&buffer, &parser, length, request_.body_deadline,
                                  worker_.config.max_header_bytes});
  } else if (parser.chunked()) {
    header_fields_.DropTrailers(parser.get());
  }
  Exchange exchange(worker_, conn_, parser.get(), client_ip_, streamed ? &*streamed : nullptr,
                    // The parser's own flags, set while it read Connection: no second scan of the tokens.
                    parser.keep_alive() && !worker_.draining());
  counters_.active_requests.fetch_add(1, std::memory_order_relaxed);
  const ExchangeOutcome outcome = co_await exchange.Run();
  if (!outcome.error.empty()) {
    co_await WriteError(parser.get().version(), outcome.status, outcome.error, outcome.keep_alive);
  }
  counters_.active_requests.fetch_sub(1, std::memory_order_relaxed);
  if (outcome.status != 0) metrics_.RequestsWithCode(outcome.status, Protocol::kHttp1).Increment();
  metrics_.request_duration.Observe(std::chrono::duration<double>(Clock::now() - request_.start).count());
  if (streamed && streamed->client_error) {
    // The refusal is the request's line; a client that left has none.
    const bool answered = co_await RejectUnreadable(streamed->client_error, RequestPart::kBody);
    if (!answered && worker_.access_log != nullptr) LogAccess(0, kClientGone, &exchange);
    if (!answered && worker_.spans != nullptr) ExportSpan(0, kClientGone, &exchange);
    co_return answered ? Next::kLinger : Next::kClose;
  }
  CountAnswer(outcome.status, &exchange);
  if (worker_.access_log != nullptr) LogAccess(outcome.status, 0, &exchange);
  if (worker_.spans != nullptr) ExportSpan(outcome.status, 0, &exchange);
  if (streamed && !parser.is_done()) co_return Next::kLinger;  // answered (an error) before the body was all in
  if (outcome.tunnel) {  // the member switched protocols: the connection is a tunnel now
    co_await RunTunnel(conn_, buffer, *outcome.tunnel, worker_.timeouts.idle, worker_.relay_buffers, metrics_);
    co_return Next::kClose;
  }
  co_return outcome.keep_alive ? Next::kRequest : Next::kGoodbye;
}

awaitable<bool> ClientSession::RejectUnreadable(error_code ec, RequestPart part) {
  const std::optional<RequestError> error = ClassifyRequestError(ec, part);
  if (!error) co_return false;
  co_await Reject(error->status, error->reason, error->message);
  co_return true;
}

awaitable<void> ClientSession::Reject(int status, Rejection reason, std::string_view why) {
  log::Warn(kComponent, "request rejected")
      .kv("status", status)
      .kv("reason", RejectionName(reason))
      .kv("detail", why)
      .kv("client", client_ip_);
  metrics_.rejected_requests[static_cast<size_t>(reason)]->Increment();
  metrics_.RequestsWithCode(status, Protocol::kHttp1).Increment();
  co_await WriteError(11, status, why, /*keep=*/false);
  CountAnswer(status, nullptr);
  if (worker_.access_log != nullptr) LogAccess(status, RejectionFlag(reason), nullptr);
  if (worker_.spans != nullptr) ExportSpan(status, RejectionFlag(reason), nullptr);
}

void ClientSession::ExportSpan(int status, uint32_t flags, const Exchange* exchange) {
  const auto* head = request_.head;
  ExportRequestSpan(worker_, head, head != nullptr && head->version() < 11 ? "1.0" : "1.1", request_.start, client_ip_,
                    status, flags, exchange);
}

uint64_t ClientSession::RequestBytesIn() const {
  return conn_.stream.bytes_read - request_.buffer->size() - request_.read_mark;
}

void ClientSession::CountAnswer(int status, const Exchange* exchange) {
  if (status == 0) return;
  CountClientAnswer(worker_, status, RequestBytesIn(), conn_.stream.bytes_written - request_.written_mark,
                    std::chrono::duration<double, std::milli>(Clock::now() - request_.start).count(),
                    conn_.stream.tls(), Protocol::kHttp1, exchange);
}

void ClientSession::LogAccess(int status, uint32_t flags, const Exchange* exchange) {
  ClientStream& stream = conn_.stream;
  AccessRecord r;
  r.time = request_.time;
  r.client = client_ip_;
  r.tls = stream.tls();
  r.status = status;
  r.bytes_in = RequestBytesIn();
  r.bytes_out = stream.bytes_written - request_.written_mark;
  r.duration_ms = std::chrono::duration<double, std::milli>(Clock::now() - request_.start).count();
  r.flags = flags;
  if (worker_.draining()) r.flags |= kDraining;
  if (const auto* head = request_.head) {
    r.protocol = head->version() >= 11 ? "HTTP/1.1" : "HTTP/1.0";
    DescribeRequest(*head, r);
  }
  if (exchange != nullptr) DescribeExchange(*exchange, r);
  worker_.access_log->Log(worker_.access_shard, r);
}

awaitable<void> ClientSession::WriteError(unsigned version, int status, std::string_view error, bool keep) {
  http::response<http::string_body> res{static_cast<http::status>(status), version < 10 ? 11u : version};
  res.set(http::field::content_type, "application/json");
  res.body() = ErrorBody(status, error);
  if (status == 405) res.set(http::field::allow, kAllowedMethods);
  res.keep_alive(keep);
  res.prepare_payload();
  conn_.SetDeadline(worker_.timeouts.idle);
  auto [ec, n] = co_await http::async_write(conn_.stream, res, kUse);
  conn_.stream.bytes_written += n;
  conn_.ClearDeadline();
}

awaitable<void> ClientSession::LingeringClose() {
  error_code ec;
  conn_.stream.shutdown(tcp::socket::shutdown_send, ec);
  conn_.SetDeadline(std::chrono::seconds(1));
  char sink[4096];
  size_t total = 0;
  while (total < (1u << 20)) {
    // Raw bytes even under TLS: they are thrown away.
    auto [rec, n] = co_await conn_.stream.socket().async_read_some(asio::buffer(sink), kUse);
    if (rec || conn_.timed_out) break;
    total += n;
  }
  conn_.stream.close(ec);
}

}  // namespace webtier::balancer
