// TLS straight over the socket (see tls_stream.h).
#include "tls/tls_stream.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <sys/socket.h>

#include <cerrno>
#include <new>

#include <boost/asio/ssl/error.hpp>

namespace webtier::balancer {

// The BIO OpenSSL reads and writes the socket through: the stream is its
// data; the descriptor is taken from the socket at each call, so a socket
// closed meanwhile (a watchdog) fails cleanly instead of touching a number
// the kernel may have handed to another connection.
struct TlsBio {
  static TlsStream* Of(BIO* b) { return static_cast<TlsStream*>(BIO_get_data(b)); }

  static int Write(BIO* b, const char* data, int size) {
    BIO_clear_retry_flags(b);
    TlsStream* s = Of(b);
    if (!s->socket_.is_open()) {
      s->last_errno_ = EBADF;
      return -1;
    }
    const ssize_t n = ::send(s->socket_.native_handle(), data, static_cast<size_t>(size), MSG_NOSIGNAL);
    if (n >= 0) return static_cast<int>(n);
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) BIO_set_retry_write(b);
    else s->last_errno_ = errno;
    return -1;
  }

  static int Read(BIO* b, char* data, int size) {
    BIO_clear_retry_flags(b);
    TlsStream* s = Of(b);
    if (!s->socket_.is_open()) {
      s->last_errno_ = EBADF;
      return -1;
    }
    const ssize_t n = ::recv(s->socket_.native_handle(), data, static_cast<size_t>(size), 0);
    if (n > 0) return static_cast<int>(n);
    if (n == 0) {
      s->eof_ = true;
      return 0;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) BIO_set_retry_read(b);
    else s->last_errno_ = errno;
    return -1;
  }

  static long Ctrl(BIO* b, int cmd, long, void*) {
    switch (cmd) {
      case BIO_CTRL_FLUSH:  // every send is already on its way
        return 1;
      case BIO_CTRL_EOF:  // tells OpenSSL a read of 0 was the peer's FIN (an unexpected EOF)
        return Of(b)->eof_ ? 1 : 0;
      default:
        return 0;
    }
  }

  static int Create(BIO* b) {
    BIO_set_init(b, 1);
    return 1;
  }

  static const BIO_METHOD* Method() {
    static const BIO_METHOD* method = [] {
      BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "webtier socket");
      if (m == nullptr) throw std::bad_alloc();
      BIO_meth_set_write(m, Write);
      BIO_meth_set_read(m, Read);
      BIO_meth_set_ctrl(m, Ctrl);
      BIO_meth_set_create(m, Create);
      return m;
    }();
    return method;
  }
};

TlsStream::TlsStream(tcp::socket& socket, asio::ssl::context& context) : socket_(socket) {
  ssl_ = SSL_new(context.native_handle());
  BIO* bio = ssl_ != nullptr ? BIO_new(TlsBio::Method()) : nullptr;
  if (bio == nullptr) {
    SSL_free(ssl_);
    throw std::bad_alloc();
  }
  BIO_set_data(bio, this);
  SSL_set_bio(ssl_, bio, bio);  // the SSL owns it
  // Partial writes: a write is one or more whole records, like a socket's
  // write_some. Release buffers: an idle keep-alive connection holds no
  // record buffers. Read ahead: a record's header and body (and what follows)
  // in one recv.
  SSL_set_mode(ssl_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
  SSL_set_read_ahead(ssl_, 1);
  SSL_set_accept_state(ssl_);
}

TlsStream::~TlsStream() { SSL_free(ssl_); }

TlsStream::Step TlsStream::Perform(Kind kind, void* data, size_t size) {
  if ((kind == Kind::kRead || kind == Kind::kWrite) && size == 0) return Step{};
  ERR_clear_error();
  last_errno_ = 0;
  int ret = 0;
  size_t bytes = 0;
  switch (kind) {
    case Kind::kHandshake:
      ret = SSL_do_handshake(ssl_);
      break;
    case Kind::kRead:
      ret = SSL_read_ex(ssl_, data, size, &bytes);
      break;
    case Kind::kWrite:
      ret = SSL_write_ex(ssl_, data, size, &bytes);
      break;
    case Kind::kShutdown:
      ret = SSL_shutdown(ssl_);
      if (ret == 0) ret = 1;  // ours is sent; the peer's is not waited for
      break;
  }
  if (ret == 1) return Step{Next::kDone, {}, bytes};
  const int error = SSL_get_error(ssl_, ret);
  switch (error) {
    case SSL_ERROR_WANT_READ:
      return Step{Next::kWaitRead, {}, 0};
    case SSL_ERROR_WANT_WRITE:
      return Step{Next::kWaitWrite, {}, 0};
    case SSL_ERROR_ZERO_RETURN:  // the peer's close_notify
      return Step{Next::kDone, asio::error::eof, 0};
    case SSL_ERROR_SYSCALL:
      if (last_errno_ != 0) return Step{Next::kDone, error_code(last_errno_, asio::error::get_system_category()), 0};
      return Step{Next::kDone, asio::ssl::error::stream_truncated, 0};
    default: {
      const unsigned long e = ERR_peek_error();
      ERR_clear_error();
      if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
        return Step{Next::kDone, asio::ssl::error::stream_truncated, 0};
      if (e == 0 && last_errno_ != 0)
        return Step{Next::kDone, error_code(last_errno_, asio::error::get_system_category()), 0};
      return Step{Next::kDone, error_code(static_cast<int>(e), asio::error::get_ssl_category()), 0};
    }
  }
}

}  // namespace webtier::balancer
