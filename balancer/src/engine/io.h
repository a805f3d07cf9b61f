// Raw socket I/O shared by the proxy engine and the admin server: listening
// sockets, driving a Beast parser straight from a socket, writes that start in
// the calling handler, chunked framing. No state; each call works on the
// sockets it is given, from the thread that runs their io_context.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <optional>
#include <string_view>
#include <tuple>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_suffix.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>

#include "webtier/balancer/http/request_errors.h"
#include "webtier/common/net.h"

namespace webtier::balancer {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using asio::awaitable;
using boost::system::error_code;

// Completion token of every engine operation: errors come back as values.
inline constexpr auto kUse = asio::as_tuple(asio::use_awaitable);

// How a listening socket is opened. SO_REUSEADDR is always set.
struct ListenOptions {
  bool reuse_port = false;  // SO_REUSEPORT: one acceptor per proxy thread on the same port
  bool listen = true;       // false: bind only (a probe that the address is free)
};

// Opens, binds and (unless told not to) listens `acceptor` on `endpoint`.
error_code OpenListener(tcp::acceptor& acceptor, const tcp::endpoint& endpoint, ListenOptions options = {});

// Makes `acceptor` accept on `fd`, a listening TCP socket this process was
// handed (it owns the descriptor from here, also on failure).
error_code AdoptListener(tcp::acceptor& acceptor, int fd);

// The address a TCP socket is bound to; none for anything else.
std::optional<tcp::endpoint> BoundEndpoint(int fd);

// The address to listen on for `listen.host`: an IP literal, "" for every
// interface, or a name resolved like a member's (blocking). None when the
// name does not resolve.
std::optional<asio::ip::address> ListenAddress(const net::HostPort& listen);

// One read from a plain TCP socket into `buffer`, completing like
// async_read_some ((error, bytes); EOF is asio::error::eof), at the cost of
// exactly one recv() on a healthy connection: when the socket's receive queue
// is known to be empty it waits for epoll first instead of trying a read
// that would fail; otherwise it reads at once, from this handler. A short
// read, or one that would block, marks the queue empty (reactor_hints.h).
// The socket must be non-blocking (every proxy socket is).
// `count`, when given, adds the bytes read.
awaitable<std::tuple<error_code, size_t>> ReadSome(tcp::socket& socket, asio::mutable_buffer buffer,
                                                   uint64_t* count = nullptr);

// True when the peer of a connection the proxy is not reading from has left:
// a non-blocking peek sees EOF or an error (reset). Bytes waiting (a client
// pipelining its next request) or nothing yet: false. No syscall while the
// receive queue is known empty (reactor_hints.h): a FIN or a reset would
// have come as an event. A peek that finds nothing marks the queue empty.
bool PeerGone(tcp::socket& socket);

// Feeds `parser` from `buffer`, reading from `socket` (a member's socket or
// a ClientStream) whenever it needs more,
// until `done()` holds (HeaderIn: the header is in; for a body, an eager
// parser and a condition on it). The parser is driven directly (no composed
// Beast operation per message): a request that arrived in one segment costs
// one read and no extra scheduling. `received` counts the bytes read from the
// socket. EOF before any byte of the message is http::error::end_of_stream; in
// the middle of one, http::error::partial_message.
//
// `trailer_limit` non-zero makes it a body read bounded by PendingBodyError
// (request_errors.h).
template <typename Stream, bool isRequest, typename Done>
awaitable<error_code> ReadMessage(Stream& socket, beast::flat_buffer& buffer, http::basic_parser<isRequest>& parser,
                                  Done done, size_t* received = nullptr, size_t trailer_limit = 0) {
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
    if (trailer_limit != 0) {
      const std::string_view pending(static_cast<const char*>(buffer.data().data()), buffer.size());
      if (const error_code ec = PendingBodyError(pending, trailer_limit)) co_return ec;
    }
    const size_t room = std::clamp<size_t>(buffer.capacity() - buffer.size(), 1024, 65536);
    auto [ec, n] = co_await ReadSome(socket, buffer.prepare(room));
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

// ReadMessage's condition for "the header is in".
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

inline constexpr std::string_view kCrlf = "\r\n";
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

// Chunk-size line for `n` body bytes: hex digits and CRLF.
size_t ChunkHeader(size_t n, char (&out)[20]);

// `data` as one chunk: size line (written into `size_line`, which must
// outlive the write), the bytes, CRLF. `data` must not be empty: a zero-size
// chunk ends the body.
inline std::array<asio::const_buffer, 3> Chunk(asio::const_buffer data, char (&size_line)[20]) {
  return {asio::buffer(size_line, ChunkHeader(data.size(), size_line)), data, asio::buffer(kCrlf.data(), kCrlf.size())};
}

// The last chunk, which ends a chunked body.
inline asio::const_buffer LastChunk() { return asio::buffer(kLastChunk.data(), kLastChunk.size()); }

}  // namespace webtier::balancer
