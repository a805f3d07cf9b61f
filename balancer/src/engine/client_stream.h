// The byte stream of one client connection: the plain TCP socket, or a TLS
// stream over it (a connection accepted on --tls-listen). The request engine
// reads and writes clients only through this type, so the same session,
// exchange, relay and tunnel code serves both; the member side stays plain
// tcp::socket. An AsyncReadStream/AsyncWriteStream (Beast and asio::async_write
// take it); a TLS stream allows one read and one write in flight at a time,
// as a socket does. Owned by one ClientConnection, used only from its
// worker's thread; not movable (the TLS stream refers to the socket).
#pragma once

#include <iterator>
#include <memory>
#include <string>
#include <utility>

#include <boost/asio/async_result.hpp>
#include <boost/asio/ssl/context.hpp>

#include "engine/io.h"
#include "engine/reactor_hints.h"
#include "tls/tls_stream.h"

namespace webtier::balancer {

namespace ssl = asio::ssl;

class ClientStream {
 public:
  using executor_type = tcp::socket::executor_type;
  using TlsStream = balancer::TlsStream;

  // Plain when `tls` is null; otherwise a TLS server stream from `tls`
  // (kept alive as long as the stream, across reloads). The socket is made
  // non-blocking here, once, for both: a plain WriteAll writes from the
  // handler first, and OpenSSL reads and writes it directly.
  explicit ClientStream(tcp::socket socket, std::shared_ptr<ssl::context> tls = nullptr)
      : socket_(std::move(socket)), context_(std::move(tls)) {
    error_code ec;
    socket_.non_blocking(true, ec);
    if (context_) tls_ = std::make_unique<TlsStream>(socket_, *context_);
    else WatchPeerShutdown(socket_);  // lets ReadSome wait without a failing recv (reactor_hints.h)
  }
  ClientStream(const ClientStream&) = delete;
  ClientStream& operator=(const ClientStream&) = delete;

  bool tls() const { return tls_ != nullptr; }
  // The TLS stream; only when tls().
  TlsStream& tls_stream() { return *tls_; }
  tcp::socket& socket() { return socket_; }
  // Where a TLS write gathers its pieces into one record (reused).
  std::string& gather() { return gather_; }
  executor_type get_executor() { return socket_.get_executor(); }

  template <typename MutableBuffers, typename Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(error_code, size_t)>(
        [this](auto handler, const MutableBuffers& b) {
          if (tls_) tls_->async_read_some(b, std::move(handler));
          else socket_.async_read_some(b, std::move(handler));
        },
        token, buffers);
  }

  template <typename ConstBuffers, typename Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(error_code, size_t)>(
        [this](auto handler, const ConstBuffers& b) {
          if (tls_) tls_->async_write_some(b, std::move(handler));
          else socket_.async_write_some(b, std::move(handler));
        },
        token, buffers);
  }

  // Bytes of the application's data read through ReadSome and handed to
  // WriteAll (or counted by the caller), for the access log.
  uint64_t bytes_read = 0;
  uint64_t bytes_written = 0;

  // On the socket: cancel ends pending TLS operations too.
  void cancel(error_code& ec) { socket_.cancel(ec); }
  void close(error_code& ec) { socket_.close(ec); }
  void shutdown(tcp::socket::shutdown_type what, error_code& ec) { socket_.shutdown(what, ec); }

 private:
  tcp::socket socket_;
  std::shared_ptr<ssl::context> context_;
  std::unique_ptr<TlsStream> tls_;
  std::string gather_;
};

// ReadSome (io.h) for a client: a plain socket reads with one recv() per
// read; TLS records come through the TLS stream's own reads.
inline awaitable<std::tuple<error_code, size_t>> ReadSome(ClientStream& stream, asio::mutable_buffer buffer) {
  if (!stream.tls()) return ReadSome(stream.socket(), buffer, &stream.bytes_read);
  return [](ClientStream& s, asio::mutable_buffer b) -> awaitable<std::tuple<error_code, size_t>> {
    auto [ec, n] = co_await s.tls_stream().async_read_some(b, kUse);
    s.bytes_read += n;
    co_return std::tuple{ec, n};
  }(stream, buffer);
}

// ReadSome and WriteAll for a connection that carries many exchanges at once
// (HTTP/2): a TLS read or write is tried from the calling handler first, as
// a plain one always is, and waits for the socket only when the try must.
// (An HTTP/1.1 connection keeps the TLS stream's own order, the result after
// a turn of the scheduler: its client's next request has then usually come,
// where a try at once finds none and pays a failing recv and a wait. On the
// 2-vCPU machine, TLS keep-alive spent 16% more CPU per request with tries.)
inline awaitable<std::tuple<error_code, size_t>> ReadSomeEager(ClientStream& stream, asio::mutable_buffer buffer) {
  if (!stream.tls()) return ReadSome(stream.socket(), buffer, &stream.bytes_read);
  return [](ClientStream& s, asio::mutable_buffer b) -> awaitable<std::tuple<error_code, size_t>> {
    TlsStream& tls = s.tls_stream();
    TlsStream::Step step = tls.TryRead(b);
    if (step.next != TlsStream::Next::kDone) {
      auto [ec, n] = co_await tls.async_read_after(step, b, kUse);
      step = TlsStream::Step{TlsStream::Next::kDone, ec, n};
    }
    s.bytes_read += step.bytes;
    co_return std::tuple{step.ec, step.bytes};
  }(stream, buffer);
}

// Writes all of `b` as TLS records, trying from the calling handler first.
inline awaitable<error_code> WriteAllEager(TlsStream& tls, asio::const_buffer b) {
  while (b.size() > 0) {
    TlsStream::Step step = tls.TryWrite(b);
    if (step.next != TlsStream::Next::kDone) {
      auto [ec, n] = co_await tls.async_write_after(step, b, kUse);
      step = TlsStream::Step{TlsStream::Next::kDone, ec, n};
    }
    if (step.ec) co_return step.ec;
    b += step.bytes;
  }
  co_return error_code{};
}

// (Not a coroutine: the plain write refers to `buffer`, the caller's, which
// lives until the caller's co_await is done.)
inline awaitable<error_code> WriteAllEager(ClientStream& stream, const asio::const_buffer& buffer) {
  stream.bytes_written += buffer.size();
  if (!stream.tls()) return WriteAll(stream.socket(), buffer);
  return WriteAllEager(stream.tls_stream(), buffer);
}

// Pieces up to this size go out as one TLS record: the TLS stream encrypts
// one buffer per write, so a head and a short body would be two records and
// two sends.
inline constexpr size_t kGatherBytes = 16 * 1024;

// WriteAll over TLS: small scattered pieces gathered into one record.
template <typename ConstBuffers>
awaitable<error_code> WriteAllTls(ClientStream& stream, const ConstBuffers& buffers) {
  const size_t total = asio::buffer_size(buffers);
  const auto begin = asio::buffer_sequence_begin(buffers);
  const bool scattered = begin != asio::buffer_sequence_end(buffers) && std::next(begin) != asio::buffer_sequence_end(buffers);
  if (scattered && total <= kGatherBytes) {
    std::string& gather = stream.gather();
    gather.resize(total);
    asio::buffer_copy(asio::buffer(gather), buffers);
    auto [ec, n] = co_await asio::async_write(stream.tls_stream(), asio::buffer(gather), kUse);
    co_return ec;
  }
  auto [ec, n] = co_await asio::async_write(stream.tls_stream(), buffers, kUse);
  co_return ec;
}

// WriteAll (io.h) for a client: a plain socket writes from the calling
// handler first; TLS records go through the TLS stream's own writes. Not a
// coroutine itself: it hands back the one that writes, so a plain write
// costs no extra coroutine frame.
template <typename ConstBuffers>
awaitable<error_code> WriteAll(ClientStream& stream, const ConstBuffers& buffers) {
  stream.bytes_written += asio::buffer_size(buffers);
  if (!stream.tls()) return WriteAll(stream.socket(), buffers);
  return WriteAllTls(stream, buffers);
}

}  // namespace webtier::balancer
