// A TLS server stream straight over a connected socket's descriptor: OpenSSL
// reads and writes the socket itself, through a BIO of ours (recv, and send
// with MSG_NOSIGNAL), and an operation that would block waits for the
// socket's readiness on its reactor, then tries again.
//
// Why not asio::ssl::stream: it runs OpenSSL against a memory BIO pair and
// moves every byte between that pair and the socket through buffers of its
// own: per connection two 17 KB BIO buffers and two zero-filled 17 KB engine
// buffers (allocated, cleared and freed for each new handshake), and a copy and
// an extra completion per record. On new connections that was several percent
// of the balancer's CPU (measured against HAProxy, which also lets OpenSSL
// read and write its socket).
//
// An AsyncReadStream/AsyncWriteStream over `socket` (which must outlive it and
// stays the owner of the descriptor: cancel or close it to end pending
// operations). One read and one write may be pending at once, as on a socket,
// from the socket's executor only. A read or write that can complete at once
// completes through a post, never inside the initiating call; a caller that
// can take a result at once tries first (TryRead/TryWrite, no post) and
// resumes asynchronously only when the attempt has to wait.
//
// Errors are the ones asio::ssl::stream gives: asio::error::eof for the
// peer's close_notify, asio::ssl::error::stream_truncated for a peer that
// closed without one, system errors (connection_reset, ...) as they are, and
// OpenSSL's in asio::error::get_ssl_category().
#pragma once

#include <openssl/ssl.h>

#include <cstddef>
#include <type_traits>
#include <utility>

#include <boost/asio/async_result.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>

#include "engine/io.h"

namespace webtier::balancer {

class TlsStream {
 public:
  using executor_type = tcp::socket::executor_type;

  // A server-side TLS stream over `socket` (connected, and in non-blocking
  // mode: ClientStream sets it) from `context`.
  TlsStream(tcp::socket& socket, asio::ssl::context& context);
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  SSL* native_handle() { return ssl_; }
  executor_type get_executor() { return socket_.get_executor(); }

  // The server handshake. Completes with error_code.
  template <typename Token>
  auto async_handshake(Token&& token) {
    return Start<void(error_code)>(Kind::kHandshake, nullptr, 0, std::forward<Token>(token));
  }

  // Sends close_notify (does not wait for the peer's unless SSL says it must).
  template <typename Token>
  auto async_shutdown(Token&& token) {
    return Start<void(error_code)>(Kind::kShutdown, nullptr, 0, std::forward<Token>(token));
  }

  // Reads into the first non-empty buffer: the bytes of one or more records.
  template <typename MutableBuffers, typename Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    const asio::mutable_buffer b = First<asio::mutable_buffer>(buffers);
    return Start<void(error_code, size_t)>(Kind::kRead, b.data(), b.size(), std::forward<Token>(token));
  }

  // Writes from the first non-empty buffer: at least one record's worth.
  template <typename ConstBuffers, typename Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    const asio::const_buffer b = First<asio::const_buffer>(buffers);
    return Start<void(error_code, size_t)>(Kind::kWrite, const_cast<void*>(b.data()), b.size(),
                                           std::forward<Token>(token));
  }

  enum class Next { kDone, kWaitRead, kWaitWrite };
  // An attempt's outcome: done (its bytes, or an error), or what it waits for.
  struct Step {
    Next next = Next::kDone;
    error_code ec;
    size_t bytes = 0;
  };

  // One read or write at once, from the calling handler: a healthy
  // connection's usual case costs no trip through the scheduler.
  Step TryRead(asio::mutable_buffer b) { return Perform(Kind::kRead, b.data(), b.size()); }
  Step TryWrite(asio::const_buffer b) { return Perform(Kind::kWrite, const_cast<void*>(b.data()), b.size()); }

  // Finishes a read or write whose try said to wait (`tried.next`): waits
  // for the socket first, then tries again, as async_read_some and
  // async_write_some do. The same buffer as the try's.
  template <typename Token>
  auto async_read_after(const Step& tried, asio::mutable_buffer b, Token&& token) {
    return Start<void(error_code, size_t)>(Kind::kRead, b.data(), b.size(), std::forward<Token>(token), tried.next);
  }
  template <typename Token>
  auto async_write_after(const Step& tried, asio::const_buffer b, Token&& token) {
    return Start<void(error_code, size_t)>(Kind::kWrite, const_cast<void*>(b.data()), b.size(),
                                           std::forward<Token>(token), tried.next);
  }

 private:
  enum class Kind { kHandshake, kRead, kWrite, kShutdown };

  // One attempt of `kind` on the SSL object; what it needs next, or its result.
  Step Perform(Kind kind, void* data, size_t size);

  template <typename Buffer, typename Buffers>
  static Buffer First(const Buffers& buffers) {
    for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers); ++it) {
      Buffer b(*it);
      if (b.size() != 0) return b;
    }
    return Buffer();
  }

  template <typename Signature>
  struct Op {
    TlsStream* stream;
    Kind kind;
    void* data;
    size_t size;
    Next first_wait = Next::kDone;  // a try already said to wait for this
    enum { kStarting, kWaiting, kPosted } state = kStarting;
    Step result{};

    template <typename Self>
    void operator()(Self& self, error_code ec = {}) {
      if (state == kPosted) return Complete(self);
      if (state == kWaiting && ec) {
        result = Step{Next::kDone, ec, 0};
        return Complete(self);
      }
      Step step{first_wait};
      first_wait = Next::kDone;
      if (step.next == Next::kDone) step = stream->Perform(kind, data, size);
      if (step.next == Next::kDone) {
        result = step;
        if (state == kStarting) {  // not inside the initiating call
          state = kPosted;
          return asio::post(stream->socket_.get_executor(), std::move(self));
        }
        return Complete(self);
      }
      state = kWaiting;
      stream->socket_.async_wait(step.next == Next::kWaitRead ? tcp::socket::wait_read : tcp::socket::wait_write,
                                 std::move(self));
    }

    template <typename Self>
    void Complete(Self& self) {
      if constexpr (std::is_same_v<Signature, void(error_code)>) self.complete(result.ec);
      else self.complete(result.ec, result.bytes);
    }
  };

  template <typename Signature, typename Token>
  auto Start(Kind kind, void* data, size_t size, Token&& token, Next first_wait = Next::kDone) {
    return asio::async_compose<Token, Signature>(Op<Signature>{this, kind, data, size, first_wait}, token, socket_);
  }

  friend struct TlsBio;
  tcp::socket& socket_;
  SSL* ssl_ = nullptr;
  int last_errno_ = 0;  // of the BIO's last failed recv/send
  bool eof_ = false;    // the BIO's recv saw the peer's FIN
};

}  // namespace webtier::balancer
