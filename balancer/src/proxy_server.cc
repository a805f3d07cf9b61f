// The proxy engine: accept, read a request, pick a member, forward with
// retries, stream the response back. One io_context (and so one thread) per
// Worker; everything a Worker owns is touched only from its own thread.
#include "webtier/balancer/proxy_server.h"

#include <sys/socket.h>

#include <cerrno>
#include <list>
#include <optional>
#include <thread>
#include <unordered_map>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "webtier/balancer/http_rules.h"
#include "webtier/common/log.h"

namespace webtier::balancer {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using asio::awaitable;
using boost::system::error_code;

namespace {

constexpr auto kUse = asio::as_tuple(asio::use_awaitable);
constexpr const char* kComponent = "proxy";
constexpr size_t kRelayBufferBytes = 32 * 1024;
constexpr uint32_t kMaxUpstreamHeaderBytes = 64 * 1024;
constexpr auto kTrustIdleConnection = std::chrono::milliseconds(100);

// Request bodies up to this size are read whole before the request goes to
// a member, so that an idempotent request can be tried again on another one.
// Larger bodies are streamed: the head leaves when this much has arrived, then
// the rest as it comes (no retry once the head has left).
constexpr size_t kBufferedBodyBytes = 64 * 1024;

using ReusePort = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

std::string ErrorBody(int status, std::string_view error) {
  std::string body = "{\"error\":\"";
  body.append(error);
  body.append("\",\"status\":");
  body.append(std::to_string(status));
  body.append("}\n");
  return body;
}

bool HasNoBody(int status, bool head) { return head || (status >= 100 && status < 200) || status == 204 || status == 304; }

// True when an idle pooled connection is still usable: no EOF, no stray bytes.
bool StillOpen(tcp::socket& s) {
  char c;
  ssize_t n = ::recv(s.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

// Feeds `parser` from `buffer`, reading from `socket` whenever it needs more,
// until `done()` holds (HeaderIn: the header is in; for a body, an eager
// parser and a condition on it). The parser is driven directly (no composed
// Beast operation per message): a request that arrived in one segment costs
// one read and no extra scheduling. `received` counts the bytes read from the
// socket. EOF before any byte of the message is http::error::end_of_stream; in
// the middle of one, http::error::partial_message.
template <bool isRequest, typename Done>
awaitable<error_code> ReadMessage(tcp::socket& socket, beast::flat_buffer& buffer, http::basic_parser<isRequest>& parser,
                                  Done done, size_t* received = nullptr) {
  for (;;) {
    while (buffer.size() > 0 && !done()) {
      error_code ec;
      const size_t used = parser.put(buffer.data(), ec);
      buffer.consume(used);
      if (ec == http::error::need_more) break;
      if (ec) co_return ec;
      if (used == 0) break;
    }
    if (done()) co_return error_code{};
    const size_t room = std::clamp<size_t>(buffer.capacity() - buffer.size(), 1024, 65536);
    auto [ec, n] = co_await socket.async_read_some(buffer.prepare(room), kUse);
    if (received != nullptr) *received += n;
    buffer.commit(n);
    if (ec == asio::error::eof) {
      if (!parser.got_some()) co_return error_code(http::error::end_of_stream);
      error_code eof_ec;
      parser.put_eof(eof_ec);
      if (eof_ec) co_return eof_ec;
      co_return done() ? error_code{} : error_code(http::error::partial_message);
    }
    if (ec) co_return ec;
  }
}

template <bool isRequest>
auto HeaderIn(const http::basic_parser<isRequest>& parser) {
  return [&parser] { return parser.is_header_done(); };
}

// Writes all of `buffers`: first straight from the calling handler (the
// sockets are non-blocking), which is how nearly every write ends on a
// healthy connection; only what the kernel did not take waits for
// writability. Saves a round through the scheduler per write compared with
// async_write, whose immediate completion is posted behind all queued work.
template <typename ConstBuffers>
awaitable<error_code> WriteAll(tcp::socket& socket, const ConstBuffers& buffers) {
  error_code ec;
  const size_t total = asio::buffer_size(buffers);
  const size_t n = socket.write_some(buffers, ec);
  if (!ec && n == total) co_return ec;
  if (ec && ec != asio::error::would_block) co_return ec;
  beast::buffers_suffix<ConstBuffers> rest(buffers);
  rest.consume(n);
  auto [wec, wn] = co_await asio::async_write(socket, rest, kUse);
  co_return wec;
}

// Chunk-size line for `n` body bytes: hex digits and CRLF.
size_t ChunkHeader(size_t n, char (&out)[20]) {
  static constexpr char kHex[] = "0123456789abcdef";
  char digits[16];
  size_t len = 0;
  do {
    digits[len++] = kHex[n & 0xf];
    n >>= 4;
  } while (n != 0);
  for (size_t i = 0; i < len; ++i) out[i] = digits[len - 1 - i];
  out[len] = '\r';
  out[len + 1] = '\n';
  return len + 2;
}

constexpr std::string_view kCrlf = "\r\n";
constexpr std::string_view kLastChunk = "0\r\n\r\n";

// `data` as one chunk: size line (written into `size_line`, which must
// outlive the write), the bytes, CRLF. `data` must not be empty: a zero-size
// chunk ends the body.
std::array<asio::const_buffer, 3> Chunk(asio::const_buffer data, char (&size_line)[20]) {
  return {asio::buffer(size_line, ChunkHeader(data.size(), size_line)), data, asio::buffer(kCrlf.data(), kCrlf.size())};
}

}  // namespace

// A connection to a member, pooled per worker between requests.
struct UpstreamConnection {
  UpstreamConnection(asio::io_context& ctx, std::shared_ptr<Host> h) : stream(ctx), host(std::move(h)) {}
  tcp::socket stream;
  beast::flat_buffer buffer;
  std::shared_ptr<Host> host;
  Clock::time_point idle_since;
  bool reused = false;
};

// A client connection, registered with its worker so a drain can close the
// idle ones and the watchdog can enforce its deadlines.
//
// Timeouts are coarse (kTick): an operation sets a deadline (a store, no
// timer), and the worker's watchdog cancels the socket's pending operation
// once the deadline has passed, setting the matching *_timed_out flag. This
// keeps timer work off the request path (HAProxy and nginx do the same).
struct ClientConnection {
  explicit ClientConnection(tcp::socket s) : stream(std::move(s)) {}
  tcp::socket stream;
  // Serialized heads, reused from request to request (their capacity stays).
  std::string request_head;   // as sent to the member (kept for a retry)
  std::string response_head;  // as sent to the client
  bool idle = true;  // between requests
  Clock::time_point deadline = Clock::time_point::max();
  bool timed_out = false;
  // The member connection this client's request is using, if any.
  tcp::socket* upstream = nullptr;
  Clock::time_point upstream_deadline = Clock::time_point::max();
  bool upstream_timed_out = false;

  void SetDeadline(std::chrono::milliseconds d) {
    deadline = Clock::now() + d;
    timed_out = false;
  }
  void ClearDeadline() { deadline = Clock::time_point::max(); }
  void SetUpstreamDeadline(tcp::socket* s, std::chrono::milliseconds d) {
    upstream = s;
    upstream_deadline = Clock::now() + d;
    upstream_timed_out = false;
  }
  void ClearUpstream() {
    upstream = nullptr;
    upstream_deadline = Clock::time_point::max();
  }
};

constexpr std::chrono::milliseconds kTick{50};

// A request whose body was still arriving when it went to a member: the rest
// is read from `buffer` and the client's socket through `parser` (eager, its
// body string emptied as each part is sent on).
struct StreamedBody {
  beast::flat_buffer& buffer;
  http::request_parser<http::string_body>& parser;
  error_code client_error;
  bool chunked() const { return !parser.content_length().has_value(); }
};

class Worker {
 public:
  Worker(ProxyServer& server, int index) : server_(server), config_(server.config_), index_(index) {}

  Status Bind(const tcp::endpoint& ep) {
    error_code ec;
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.set_option(ReusePort(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return Status(ErrorCode::kUnavailable, "cannot listen on " + ep.address().to_string() + ":" +
                                                       std::to_string(ep.port()) + ": " + ec.message());
    return Status::Ok();
  }
  uint16_t bound_port() const { return acceptor_.local_endpoint().port(); }

  void Start() {
    asio::co_spawn(ctx_, Accept(), asio::detached);
    asio::co_spawn(ctx_, SweepIdle(), asio::detached);
    asio::co_spawn(ctx_, Watchdog(), asio::detached);
    thread_ = std::thread([this] { ctx_.run(); });
  }

  // Stop accepting; close the client connections that wait for a request.
  void BeginDrain() {
    asio::post(ctx_, [this] {
      error_code ec;
      acceptor_.close(ec);
      for (ClientConnection* c : clients_) {
        if (c->idle) c->stream.cancel(ec);
      }
    });
  }

  void Stop() {
    ctx_.stop();
    if (thread_.joinable()) thread_.join();
  }

 private:
  awaitable<void> Accept();
  awaitable<void> Serve(tcp::socket socket);
  // Sends `req` to a member (retries as --retries allows) and relays the
  // answer; returns the status the client got, 0 if it got none (it went
  // away mid-body). `streamed`: the body is not whole yet, see StreamedBody.
  awaitable<int> Forward(ClientConnection& conn, http::request<http::string_body>& req, const std::string& client_ip,
                         bool& keep, StreamedBody* streamed);
  // Sends the rest of a streamed body to `up` as it arrives from the client.
  // A client failure (too large, too slow, malformed, gone) is left in
  // `streamed.client_error`; the result is the member's write error.
  awaitable<error_code> StreamBody(ClientConnection& conn, UpstreamConnection& up, StreamedBody& streamed);
  awaitable<bool> Relay(ClientConnection& conn, UpstreamConnection& up, http::response_parser<http::buffer_body>& rp,
                        bool head, unsigned client_version, std::string_view request_id, bool& keep);
  awaitable<void> WriteError(ClientConnection& conn, unsigned version, int status, std::string_view error, bool keep);
  awaitable<void> Reject(ClientConnection& conn, int status, Rejection reason, std::string_view why,
                         const std::string& client_ip);
  // Answers a failure to read a request body (413, 408, 400); false when
  // the client went away and nobody is left to answer.
  awaitable<bool> RejectBody(ClientConnection& conn, error_code ec, const std::string& client_ip);
  awaitable<void> LingeringClose(ClientConnection& conn);
  awaitable<void> SweepIdle();
  awaitable<void> Watchdog();

  const HostSet& Snapshot() {
    const uint64_t v = server_.pool_.version();
    if (v != snapshot_version_ || !snapshot_) {
      snapshot_ = server_.pool_.Snapshot();
      snapshot_version_ = v;
    }
    return *snapshot_;
  }

  std::unique_ptr<UpstreamConnection> TakeIdle(Host* host);
  // Passive ejection after a failed attempt; logs and counts a new ejection.
  void EjectAfterFailure(Host& host, std::string_view why);
  void ReturnIdle(std::unique_ptr<UpstreamConnection> up);

  std::unique_ptr<char[]> TakeRelayBuffer() {
    if (free_buffers_.empty()) return std::make_unique<char[]>(kRelayBufferBytes);
    auto b = std::move(free_buffers_.back());
    free_buffers_.pop_back();
    return b;
  }
  void ReturnRelayBuffer(std::unique_ptr<char[]> b) {
    if (free_buffers_.size() < 64) free_buffers_.push_back(std::move(b));
  }

  ProxyServer& server_;
  const Config& config_;
  const int index_;
  // Declared before ctx_: coroutine frames destroyed with ctx_ unregister from it.
  std::list<ClientConnection*> clients_;
  asio::io_context ctx_{1};
  tcp::acceptor acceptor_{ctx_};
  std::unordered_map<Host*, std::vector<std::unique_ptr<UpstreamConnection>>> idle_;
  std::vector<std::unique_ptr<char[]>> free_buffers_;
  std::shared_ptr<const HostSet> snapshot_;
  uint64_t snapshot_version_ = ~0ULL;
  std::thread thread_;
};

awaitable<void> Worker::Accept() {
  asio::steady_timer backoff(ctx_);
  uint64_t rejected = 0, failed = 0;
  for (;;) {
    auto [ec, socket] = co_await acceptor_.async_accept(kUse);
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
      // EMFILE and friends: wait a little instead of spinning, log now and then.
      if (failed++ % 100 == 0) log::Warn(kComponent, "accept failed").kv("err", ec.message()).kv("count", failed);
      backoff.expires_after(std::chrono::milliseconds(50));
      co_await backoff.async_wait(kUse);
      continue;
    }
    if (server_.open_connections_.load(std::memory_order_relaxed) >= config_.max_connections) {
      server_.metrics_.rejected_connections.Increment();
      if (rejected++ % 1000 == 0)
        log::Warn(kComponent, "connection refused: --max-connections reached").kv("max", config_.max_connections);
      error_code ignored;
      socket.close(ignored);
      continue;
    }
    server_.open_connections_.fetch_add(1, std::memory_order_relaxed);
    server_.metrics_.client_connections.Increment();
    asio::co_spawn(ctx_, Serve(std::move(socket)), asio::detached);
  }
}

awaitable<void> Worker::Serve(tcp::socket socket) {
  error_code ec0;
  socket.set_option(tcp::no_delay(true), ec0);
  socket.non_blocking(true, ec0);  // WriteAll writes from the handler
  ClientConnection conn(std::move(socket));
  auto registered = clients_.insert(clients_.end(), &conn);
  struct Unregister {
    Worker* w;
    std::list<ClientConnection*>::iterator it;
    ~Unregister() {
      w->clients_.erase(it);
      w->server_.open_connections_.fetch_sub(1, std::memory_order_relaxed);
      w->server_.metrics_.client_connections.Decrement();
    }
  } unregister{this, registered};

  std::string client_ip = "unknown";
  {
    error_code ec;
    auto ep = conn.stream.remote_endpoint(ec);
    if (!ec) client_ip = ep.address().to_string();
  }
  const auto header_timeout = std::chrono::milliseconds(config_.header_timeout_ms);
  const auto idle_timeout = std::chrono::milliseconds(config_.idle_timeout_ms);
  beast::flat_buffer buffer;
  bool first = true;
  bool lingering = false;
  try {
    for (;;) {
      conn.idle = true;
      if (server_.draining_.load(std::memory_order_relaxed)) break;
      if (buffer.size() == 0) {
        // Waiting for the next request: the idle timeout applies (the header
        // timeout for a fresh connection, which has sent nothing yet).
        conn.SetDeadline(first ? header_timeout : idle_timeout);
        auto [ec, n] = co_await conn.stream.async_read_some(buffer.prepare(8192), kUse);
        conn.ClearDeadline();
        if (ec) break;
        buffer.commit(n);
      }
      conn.idle = false;
      first = false;
      const auto start = Clock::now();

      http::request_parser<http::string_body> parser;
      parser.header_limit(config_.max_header_bytes);
      parser.body_limit(config_.max_body_bytes);
      conn.SetDeadline(header_timeout);
      error_code ec = co_await ReadMessage(conn.stream, buffer, parser, HeaderIn(parser));
      conn.ClearDeadline();
      if (conn.timed_out) ec = beast::error::timeout;
      if (ec) {
        // The client went away mid-header: nobody to answer.
        if (ec == http::error::end_of_stream || ec == http::error::partial_message || ec == asio::error::eof ||
            ec == asio::error::connection_reset || ec == asio::error::operation_aborted)
          break;
        lingering = true;
        if (ec == beast::error::timeout) {
          co_await Reject(conn, 408, Rejection::kHeaderTimeout, "request header not complete in time", client_ip);
        } else if (ec == http::error::header_limit) {
          co_await Reject(conn, 431, Rejection::kHeaderTooLarge, "request header too large", client_ip);
        } else if (ec == http::error::body_limit) {
          co_await Reject(conn, 413, Rejection::kBodyTooLarge, "request body too large", client_ip);
        } else if (ec == http::error::bad_transfer_encoding || ec == http::error::bad_content_length ||
                   ec == http::error::multiple_content_length) {
          co_await Reject(conn, 400, Rejection::kSmuggling, ec.message(), client_ip);
        } else {
          co_await Reject(conn, 400, Rejection::kBadRequest, ec.message(), client_ip);
        }
        break;
      }
      if (auto why = CheckRequestFraming(parser.get()); !why.empty()) {
        lingering = true;
        const bool smuggling = why.find("Host") == std::string_view::npos;
        co_await Reject(conn, 400, smuggling ? Rejection::kSmuggling : Rejection::kBadRequest, why, client_ip);
        break;
      }
      if (!parser.is_done()) {
        auto expect = parser.get()[http::field::expect];
        if (beast::iequals(expect, "100-continue")) {
          static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
          conn.SetDeadline(idle_timeout);
          auto [wec, wn] = co_await asio::async_write(conn.stream, asio::buffer(kContinue.data(), kContinue.size()), kUse);
          if (wec) break;
        }
        conn.SetDeadline(std::chrono::milliseconds(config_.request_timeout_ms));
        parser.eager(true);
        error_code bec = co_await ReadMessage(conn.stream, buffer, parser, [&parser] {
          return parser.is_done() || parser.get().body().size() >= kBufferedBodyBytes;
        });
        conn.ClearDeadline();
        if (conn.timed_out) bec = beast::error::timeout;
        if (bec) {
          lingering = co_await RejectBody(conn, bec, client_ip);
          break;
        }
      }
      bool keep = parser.get().keep_alive() && !server_.draining_.load(std::memory_order_relaxed);
      // A body not yet whole is streamed to the member by Forward.
      std::optional<StreamedBody> streamed;
      if (!parser.is_done()) streamed.emplace(StreamedBody{buffer, parser});
      server_.active_requests_.fetch_add(1, std::memory_order_relaxed);
      const int code = co_await Forward(conn, parser.get(), client_ip, keep, streamed ? &*streamed : nullptr);
      server_.active_requests_.fetch_sub(1, std::memory_order_relaxed);
      if (code != 0) server_.metrics_.RequestsWithCode(code).Increment();
      server_.metrics_.request_duration.Observe(std::chrono::duration<double>(Clock::now() - start).count());
      if (streamed && streamed->client_error) {
        lingering = co_await RejectBody(conn, streamed->client_error, client_ip);
        break;
      }
      if (streamed && !parser.is_done()) {
        lingering = true;  // answered (an error) before the body was all in
        break;
      }
      if (!keep) break;
    }
  } catch (const std::exception& e) {
    log::Error(kComponent, "connection failed").kv("client", client_ip).kv("err", e.what());
  }
  if (lingering) {
    co_await LingeringClose(conn);
  } else {
    error_code ec;
    conn.stream.shutdown(tcp::socket::shutdown_send, ec);
    conn.stream.close(ec);
  }
}

awaitable<int> Worker::Forward(ClientConnection& conn, http::request<http::string_body>& req,
                               const std::string& client_ip, bool& keep, StreamedBody* streamed) {
  const unsigned client_version = req.version();
  const HostSet& hosts = Snapshot();
  // Keep the generation alive across suspensions even if the pool moves on.
  std::shared_ptr<const HostSet> hold = snapshot_;
  // An error answered while the client is still sending its body ends the
  // connection: the rest of the body is not read.
  if (streamed != nullptr) keep = false;
  if (hosts.hosts.empty()) {
    co_await WriteError(conn, client_version, 503, "no members", keep);
    co_return 503;
  }
  char new_id[kRequestIdLength];
  WriteRequestId(new_id);
  UpstreamBody framing;
  if (streamed != nullptr) {
    framing.streamed = true;
    if (auto length = streamed->parser.content_length()) framing.length = *length;
  }
  const std::string_view request_id =
      SerializeUpstreamRequest(req, client_ip, std::string_view(new_id, sizeof new_id), conn.request_head, framing);
  // The head, then the body (a streamed one: what has arrived so far).
  char chunk_header[20];
  std::array<asio::const_buffer, 4> request_parts{asio::buffer(conn.request_head), asio::buffer(req.body())};
  size_t request_part_count = 2;
  if (streamed != nullptr && streamed->chunked() && !req.body().empty()) {
    const auto chunk = Chunk(asio::buffer(req.body()), chunk_header);
    request_parts = {asio::buffer(conn.request_head), chunk[0], chunk[1], chunk[2]};
    request_part_count = 4;
  }
  const std::span<const asio::const_buffer> request_bytes(request_parts.data(), request_part_count);
  // A streamed body cannot be sent twice: once it is under way (its first
  // part accepted by a member), no retry.
  const bool replayable = streamed == nullptr;
  const bool idempotent = IsIdempotent(req.method());
  const bool head = req.method() == http::verb::head;
  std::string_view path(req.target().data(), req.target().size());
  if (auto q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);

  Host* tried_storage[16];
  size_t tried = 0;
  int status = 502;
  std::string_view error = "no member answered";
  const int attempts = 1 + std::max(0, config_.retries);
  for (int attempt = 0; attempt < attempts && tried < std::size(tried_storage); ++attempt) {
    Host* host = hosts.Pick(path, std::span<Host* const>(tried_storage, tried), Clock::now());
    if (host == nullptr) break;
    tried_storage[tried++] = host;
    if (attempt > 0) server_.metrics_.retries.Increment();
    host->requests.fetch_add(1, std::memory_order_relaxed);
    host->in_flight.fetch_add(1, std::memory_order_relaxed);
    struct InFlight {
      Host* h;
      ~InFlight() { h->in_flight.fetch_sub(1, std::memory_order_relaxed); }
    } in_flight{host};

    // A streamed body gets a fresh connection: on a pooled one that the
    // member has meanwhile closed, the failure would show only after the
    // body has been consumed, too late for a retry.
    std::unique_ptr<UpstreamConnection> up = streamed == nullptr ? TakeIdle(host) : nullptr;
    // Declared after `up`: unhooks the watchdog before the connection goes.
    struct Unwatch {
      ClientConnection& c;
      ~Unwatch() { c.ClearUpstream(); }
    } unwatch{conn};
    if (!up) {
      up = std::make_unique<UpstreamConnection>(ctx_, host->shared_from_this());
      conn.SetUpstreamDeadline(&up->stream, std::chrono::milliseconds(config_.connect_timeout_ms));
      auto [cec_raw] = co_await up->stream.async_connect(host->endpoint(), kUse);
      error_code cec = cec_raw;
      if (conn.upstream_timed_out) cec = beast::error::timeout;
      if (cec) {
        host->Count(Outcome::kConnectFailure);
        EjectAfterFailure(*host, cec.message());
        status = 502;
        error = "member refused the connection";
        continue;  // nothing was sent: safe to try another member whatever the method
      }
      error_code ignored;
      up->stream.set_option(tcp::no_delay(true), ignored);
      up->stream.non_blocking(true, ignored);  // WriteAll writes from the handler
    }

    // --try-timeout-ms bounds this attempt only while another member is
    // left to try; the last attempt gets the whole request timeout.
    const bool bounded_try = idempotent && replayable && config_.try_timeout_ms > 0 &&
                             config_.try_timeout_ms < config_.request_timeout_ms && attempt + 1 < attempts &&
                             tried < hosts.hosts.size() && tried < std::size(tried_storage);
    conn.SetUpstreamDeadline(&up->stream, std::chrono::milliseconds(bounded_try ? config_.try_timeout_ms
                                                                                : config_.request_timeout_ms));
    // A stalled member (frozen, overloaded): give up on it and ask another.
    // The request is idempotent, so the member acting on it late is harmless.
    auto abandon_try = [&](std::string_view why) {
      host->Count(Outcome::kTimeout);
      EjectAfterFailure(*host, why);
      status = 504;
      error = "upstream timeout";
    };
    error_code wec = co_await WriteAll(up->stream, request_bytes);
    if (conn.upstream_timed_out) wec = beast::error::timeout;
    if (wec) {
      if (wec == beast::error::timeout && bounded_try) {
        abandon_try("request not taken within the try timeout");
        continue;  // the connection closes with `up`
      }
      if (wec == beast::error::timeout) {
        host->Count(Outcome::kTimeout);
        status = 504;
        error = "upstream timeout";
        break;
      }
      host->Count(Outcome::kReset);
      status = 502;
      error = "member closed the connection";
      if (idempotent) continue;  // a streamed body too: what has arrived is still in req.body()
      break;
    }
    if (streamed != nullptr) {
      error_code sec = co_await StreamBody(conn, *up, *streamed);
      if (streamed->client_error) co_return 0;  // Serve answers it; the member's connection closes with `up`
      if (sec) {
        host->Count(sec == beast::error::timeout ? Outcome::kTimeout : Outcome::kReset);
        status = sec == beast::error::timeout ? 504 : 502;
        error = sec == beast::error::timeout ? "upstream timeout" : "member closed the connection";
        break;
      }
      keep = req.keep_alive() && !server_.draining_.load(std::memory_order_relaxed);  // the body is all read
      // The response is due within the request timeout of the body's end.
      conn.SetUpstreamDeadline(&up->stream, std::chrono::milliseconds(config_.request_timeout_ms));
    }

    std::optional<http::response_parser<http::buffer_body>> rp;
    error_code rec;
    size_t received = 0;
    for (;;) {  // interim 1xx responses are skipped
      rp.emplace();
      rp->header_limit(kMaxUpstreamHeaderBytes);
      rp->body_limit(boost::none);
      if (head) rp->skip(true);
      rec = co_await ReadMessage(up->stream, up->buffer, *rp, HeaderIn(*rp), &received);
      if (conn.upstream_timed_out) rec = beast::error::timeout;
      if (rec) break;
      const int code = rp->get().result_int();
      if (code < 100 || code >= 200 || code == 101) break;
    }
    if (rec) {
      if (rec == beast::error::timeout && bounded_try && received == 0 && up->buffer.size() == 0) {
        abandon_try("no response within the try timeout");
        continue;
      }
      if (rec == beast::error::timeout) {
        host->Count(Outcome::kTimeout);
        log::Warn(kComponent, "upstream timeout").kv("member", host->member().id).kv("target", req.target());
        status = 504;
        error = "upstream timeout";
        break;
      }
      host->Count(Outcome::kReset);
      status = 502;
      error = "member closed the connection";
      // Retry only when the member cannot have answered: no byte of a response.
      if (idempotent && replayable && received == 0 && up->buffer.size() == 0) continue;
      log::Warn(kComponent, "upstream failed mid-response").kv("member", host->member().id).kv("err", rec.message());
      break;
    }
    host->Count(Outcome::kOk);
    host->RecordSuccess();
    const int code = rp->get().result_int();
    const bool upstream_keep = rp->get().keep_alive();
    conn.ClearUpstream();
    const bool reusable = co_await Relay(conn, *up, *rp, head, client_version, request_id, keep);
    if (reusable && upstream_keep && up->buffer.size() == 0) ReturnIdle(std::move(up));
    co_return code;
  }
  if (status == 502) log::Warn(kComponent, "no member answered").kv("target", req.target()).kv("attempts", tried).kv("err", error);
  co_await WriteError(conn, client_version, status, error, keep);
  co_return status;
}

awaitable<error_code> Worker::StreamBody(ClientConnection& conn, UpstreamConnection& up, StreamedBody& streamed) {
  auto& parser = streamed.parser;
  std::string& body = parser.get().body();
  const bool chunked = streamed.chunked();
  const auto request_timeout = std::chrono::milliseconds(config_.request_timeout_ms);
  body.clear();  // the part before the head went with it
  // Waiting on the client is the client deadline's business; each write to
  // the member has its own deadline.
  auto write = [&](const auto& buffers) -> awaitable<error_code> {
    conn.SetUpstreamDeadline(&up.stream, request_timeout);
    const error_code ec = co_await WriteAll(up.stream, buffers);
    conn.ClearUpstream();
    co_return ec && conn.upstream_timed_out ? error_code(beast::error::timeout) : ec;
  };
  conn.ClearUpstream();
  while (!parser.is_done()) {
    conn.SetDeadline(request_timeout);
    error_code cec =
        co_await ReadMessage(conn.stream, streamed.buffer, parser, [&] { return parser.is_done() || !body.empty(); });
    conn.ClearDeadline();
    if (conn.timed_out) cec = beast::error::timeout;
    if (cec) {
      streamed.client_error = cec;
      co_return error_code{};
    }
    if (body.empty()) continue;
    char size_line[20];
    const error_code wec =
        chunked ? co_await write(Chunk(asio::buffer(body), size_line)) : co_await write(asio::buffer(body));
    if (wec) co_return wec;
    body.clear();
  }
  if (chunked) co_return co_await write(asio::buffer(kLastChunk.data(), kLastChunk.size()));
  co_return error_code{};
}

// Sends the member's response (its header already parsed into `rp`) to the
// client. True when it went through whole and the member's connection is
// clean for another request.
awaitable<bool> Worker::Relay(ClientConnection& conn, UpstreamConnection& up,
                              http::response_parser<http::buffer_body>& rp, bool head, unsigned client_version,
                              std::string_view request_id, bool& keep) {
  auto& res = rp.get();
  const bool bodyless = HasNoBody(res.result_int(), head);
  const bool sized = bodyless || (!rp.chunked() && rp.content_length().has_value());
  BodyFraming framing = BodyFraming::kAsIs;
  if (!sized) {
    // Chunked or close-delimited: re-chunk for an HTTP/1.1 client; an
    // HTTP/1.0 client gets the plain body and the end of the connection.
    if (client_version >= 11) {
      framing = BodyFraming::kChunked;
    } else {
      framing = BodyFraming::kCloseDelimited;
      keep = false;
    }
  }
  SerializeResponseHead(res, client_version, keep, framing, request_id, conn.response_head);
  const auto idle_timeout = std::chrono::milliseconds(config_.idle_timeout_ms);
  const auto request_timeout = std::chrono::milliseconds(config_.request_timeout_ms);

  if (sized) {
    // The common case: the head and the body bytes already read go out in
    // one write, the rest of the body is copied as it comes.
    uint64_t left = bodyless ? 0 : *rp.content_length();
    const size_t first = static_cast<size_t>(std::min<uint64_t>(left, up.buffer.size()));
    const std::array<asio::const_buffer, 2> out{asio::buffer(conn.response_head),
                                                asio::buffer(up.buffer.data().data(), first)};
    conn.SetDeadline(idle_timeout);
    const error_code wec = co_await WriteAll(conn.stream, out);
    conn.ClearDeadline();
    if (wec) {
      keep = false;
      co_return false;
    }
    up.buffer.consume(first);
    left -= first;
    bool ok = true;
    if (left > 0) {
      auto buf = TakeRelayBuffer();
      while (left > 0) {
        conn.SetUpstreamDeadline(&up.stream, request_timeout);
        auto [rec, n] = co_await up.stream.async_read_some(
            asio::buffer(buf.get(), static_cast<size_t>(std::min<uint64_t>(left, kRelayBufferBytes))), kUse);
        const bool timed_out = conn.upstream_timed_out;
        conn.ClearUpstream();
        if (rec || n == 0) {
          log::Warn(kComponent, "upstream failed mid-body")
              .kv("member", up.host->member().id)
              .kv("err", timed_out ? "timeout" : rec.message());
          ok = false;
          break;
        }
        left -= n;
        conn.SetDeadline(idle_timeout);
        const error_code cwec = co_await WriteAll(conn.stream, asio::buffer(buf.get(), n));
        conn.ClearDeadline();
        if (cwec) {
          ok = false;
          break;
        }
      }
      ReturnRelayBuffer(std::move(buf));
    }
    if (!ok) keep = false;  // the client saw a truncated response: only closing tells it
    co_return ok && (!bodyless || rp.is_done());
  }

  // Chunked or close-delimited: Beast decodes the member's framing into
  // `buf`; each piece goes out as one chunk (or as is, to HTTP/1.0).
  auto buf = TakeRelayBuffer();
  bool ok = true;
  bool head_sent = false;
  for (;;) {
    size_t got = 0;
    if (!rp.is_done()) {
      res.body().data = buf.get();
      res.body().size = kRelayBufferBytes;
      conn.SetUpstreamDeadline(&up.stream, request_timeout);
      auto [ec_raw, n] = co_await http::async_read_some(up.stream, up.buffer, rp, kUse);
      conn.ClearUpstream();
      error_code ec = ec_raw;
      if (conn.upstream_timed_out) ec = beast::error::timeout;
      if (ec == http::error::need_buffer) ec = {};
      if (ec) {
        log::Warn(kComponent, "upstream failed mid-body").kv("member", up.host->member().id).kv("err", ec.message());
        ok = false;
        break;
      }
      got = kRelayBufferBytes - res.body().size;
      if (got == 0 && !rp.is_done()) continue;  // only chunk framing arrived
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
      if (last) out[count++] = asio::buffer(kLastChunk.data(), kLastChunk.size());
    } else if (got > 0) {
      out[count++] = asio::buffer(buf.get(), got);
    }
    conn.SetDeadline(idle_timeout);
    const error_code wec = co_await WriteAll(conn.stream, std::span<const asio::const_buffer>(out.data(), count));
    conn.ClearDeadline();
    if (wec) {
      ok = false;
      break;
    }
    head_sent = true;
    if (last) break;
  }
  ReturnRelayBuffer(std::move(buf));
  if (!ok) keep = false;
  co_return ok && !rp.need_eof();
}

awaitable<void> Worker::WriteError(ClientConnection& conn, unsigned version, int status, std::string_view error,
                                   bool keep) {
  http::response<http::string_body> res{static_cast<http::status>(status), version < 10 ? 11u : version};
  res.set(http::field::content_type, "application/json");
  res.body() = ErrorBody(status, error);
  res.keep_alive(keep);
  res.prepare_payload();
  conn.SetDeadline(std::chrono::milliseconds(config_.idle_timeout_ms));
  co_await http::async_write(conn.stream, res, kUse);
  conn.ClearDeadline();
}

awaitable<void> Worker::Reject(ClientConnection& conn, int status, Rejection reason, std::string_view why,
                               const std::string& client_ip) {
  log::Warn(kComponent, "request rejected")
      .kv("status", status)
      .kv("reason", RejectionName(reason))
      .kv("detail", why)
      .kv("client", client_ip);
  server_.metrics_.rejected_requests[static_cast<size_t>(reason)]->Increment();
  server_.metrics_.RequestsWithCode(status).Increment();
  co_await WriteError(conn, 11, status, why, /*keep=*/false);
}

awaitable<bool> Worker::RejectBody(ClientConnection& conn, error_code ec, const std::string& client_ip) {
  if (ec == http::error::body_limit) {
    co_await Reject(conn, 413, Rejection::kBodyTooLarge, "request body too large", client_ip);
  } else if (ec == beast::error::timeout) {
    co_await Reject(conn, 408, Rejection::kHeaderTimeout, "request body not complete in time", client_ip);
  } else if (ec != http::error::end_of_stream && ec != asio::error::eof && ec != asio::error::connection_reset &&
             ec != http::error::partial_message) {
    co_await Reject(conn, 400, Rejection::kBadRequest, ec.message(), client_ip);
  } else {
    co_return false;
  }
  co_return true;
}

awaitable<void> Worker::LingeringClose(ClientConnection& conn) {
  // Half-close and read what the client still sends for a moment, so it gets
  // our error response instead of a reset.
  error_code ec;
  conn.stream.shutdown(tcp::socket::shutdown_send, ec);
  conn.SetDeadline(std::chrono::seconds(1));
  char sink[4096];
  size_t total = 0;
  while (total < (1u << 20)) {
    auto [rec, n] = co_await conn.stream.async_read_some(asio::buffer(sink), kUse);
    if (rec || conn.timed_out) break;
    total += n;
  }
  conn.stream.close(ec);
}

std::unique_ptr<UpstreamConnection> Worker::TakeIdle(Host* host) {
  auto it = idle_.find(host);
  if (it == idle_.end()) return nullptr;
  auto& list = it->second;
  const auto now = Clock::now();
  while (!list.empty()) {
    auto up = std::move(list.back());
    list.pop_back();
    const auto idle = now - up->idle_since;
    // A connection back in the pool moments ago is trusted without a syscall
    // (under load that is nearly every one); older ones are checked for an
    // EOF the member sent meanwhile. A miss is caught by the retry anyway.
    if (idle < std::chrono::milliseconds(config_.idle_timeout_ms) &&
        (idle < kTrustIdleConnection || StillOpen(up->stream))) {
      up->reused = true;
      return up;
    }
  }
  idle_.erase(it);
  return nullptr;
}

void Worker::EjectAfterFailure(Host& host, std::string_view why) {
  if (!host.Eject(Clock::now())) return;
  server_.metrics_.ejections.Increment();
  log::Warn(kComponent, "member ejected")
      .kv("member", host.member().id)
      .kv("address", host.member().Address())
      .kv("err", why)
      .kv("for_ms", std::chrono::duration_cast<std::chrono::milliseconds>(host.ejected_until() - Clock::now()).count());
}

void Worker::ReturnIdle(std::unique_ptr<UpstreamConnection> up) {
  if (up->host->removed() || server_.draining_.load(std::memory_order_relaxed)) return;
  auto& list = idle_[up->host.get()];
  if (static_cast<int>(list.size()) >= config_.max_idle_upstream_per_member) return;
  up->idle_since = Clock::now();
  list.push_back(std::move(up));
}

awaitable<void> Worker::Watchdog() {
  asio::steady_timer timer(ctx_);
  for (;;) {
    timer.expires_after(kTick);
    auto [ec] = co_await timer.async_wait(kUse);
    if (ec) co_return;
    const auto now = Clock::now();
    for (ClientConnection* c : clients_) {
      error_code ignored;
      if (now >= c->deadline) {
        c->timed_out = true;
        c->stream.cancel(ignored);
      }
      if (c->upstream != nullptr && now >= c->upstream_deadline) {
        c->upstream_timed_out = true;
        c->upstream->cancel(ignored);
      }
    }
  }
}

awaitable<void> Worker::SweepIdle() {
  asio::steady_timer timer(ctx_);
  for (;;) {
    timer.expires_after(std::chrono::seconds(1));
    auto [ec] = co_await timer.async_wait(kUse);
    if (ec) co_return;
    const auto now = Clock::now();
    for (auto it = idle_.begin(); it != idle_.end();) {
      auto& list = it->second;
      std::erase_if(list, [&](const std::unique_ptr<UpstreamConnection>& up) {
        return up->host->removed() || now - up->idle_since >= std::chrono::milliseconds(config_.idle_timeout_ms);
      });
      if (list.empty()) it = idle_.erase(it);
      else ++it;
    }
  }
}

ProxyServer::ProxyServer(const Config& config, Pool& pool, ProxyMetrics& metrics)
    : config_(config), pool_(pool), metrics_(metrics) {}

ProxyServer::~ProxyServer() {
  for (auto& w : workers_) w->Stop();
  workers_.clear();
}

Status ProxyServer::Start() {
  error_code ec;
  asio::ip::address addr = asio::ip::make_address(config_.listen.host.empty() ? "0.0.0.0" : config_.listen.host, ec);
  if (ec) {
    serverset::Member m;
    m.host = config_.listen.host;
    m.port = config_.listen.port;
    tcp::endpoint ep;
    if (!ResolveMember(m, &ep)) return Status(ErrorCode::kInvalidArgument, "cannot resolve --listen host " + m.host);
    addr = ep.address();
  }
  int threads = config_.threads > 0 ? config_.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  uint16_t port = config_.listen.port;
  if (port != 0) {
    // SO_REUSEPORT would let a second balancer on the same port silently take
    // half the connections: a plain bind first turns that into a clear error.
    asio::io_context probe_ctx;
    tcp::acceptor probe(probe_ctx);
    tcp::endpoint ep(addr, port);
    probe.open(ep.protocol(), ec);
    if (!ec) probe.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) probe.bind(ep, ec);
    if (ec) return Status(ErrorCode::kUnavailable, "cannot listen on " + addr.to_string() + ":" + std::to_string(port) + ": " + ec.message());
  }
  for (int i = 0; i < threads; ++i) {
    auto w = std::make_unique<Worker>(*this, i);
    Status s = w->Bind(tcp::endpoint(addr, port));
    if (!s.ok()) return s;
    port = w->bound_port();  // --listen :0 picks one port for all threads
    workers_.push_back(std::move(w));
  }
  port_ = port;
  for (auto& w : workers_) w->Start();
  log::Info(kComponent, "listening").kv("address", addr.to_string() + ":" + std::to_string(port_)).kv("threads", threads);
  return Status::Ok();
}

void ProxyServer::Shutdown(std::chrono::milliseconds drain) {
  if (draining_.exchange(true)) return;
  log::Info(kComponent, "draining").kv("open_connections", open_connections_.load()).kv("in_flight", active_requests_.load());
  for (auto& w : workers_) w->BeginDrain();
  const auto deadline = Clock::now() + drain;
  while (Clock::now() < deadline && (active_requests_.load() > 0 || open_connections_.load() > 0)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    // Connections that finished a request in the meantime are idle now: close them too.
    for (auto& w : workers_) w->BeginDrain();
  }
  if (active_requests_.load() > 0)
    log::Warn(kComponent, "drain time over; abandoning requests").kv("in_flight", active_requests_.load());
  for (auto& w : workers_) w->Stop();
}

}  // namespace webtier::balancer
