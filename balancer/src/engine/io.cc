// Raw socket I/O helpers of the proxy engine (see io.h).
#include "engine/io.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "engine/reactor_hints.h"
#include "webtier/balancer/upstream/pool.h"

namespace webtier::balancer {

namespace {
using ReusePort = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;
}  // namespace

error_code OpenListener(tcp::acceptor& acceptor, const tcp::endpoint& endpoint, ListenOptions options) {
  error_code ec;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec && options.reuse_port) acceptor.set_option(ReusePort(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec && options.listen) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  return ec;
}

std::optional<tcp::endpoint> BoundEndpoint(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return std::nullopt;
  if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6) return std::nullopt;
  tcp::endpoint ep;
  if (len > ep.capacity()) return std::nullopt;
  std::memcpy(ep.data(), &ss, len);
  ep.resize(len);
  return ep;
}

error_code AdoptListener(tcp::acceptor& acceptor, int fd) {
  const std::optional<tcp::endpoint> ep = BoundEndpoint(fd);
  if (!ep) {
    ::close(fd);
    return asio::error::bad_descriptor;
  }
  error_code ec;
  acceptor.assign(ep->protocol(), fd, ec);
  if (ec) ::close(fd);
  return ec;
}

std::optional<asio::ip::address> ListenAddress(const net::HostPort& listen) {
  error_code ec;
  const asio::ip::address addr = asio::ip::make_address(listen.host.empty() ? "0.0.0.0" : listen.host, ec);
  if (!ec) return addr;
  serverset::Member m;
  m.host = listen.host;
  m.port = listen.port;
  tcp::endpoint ep;
  if (!ResolveMember(m, &ep)) return std::nullopt;
  return ep.address();
}

namespace {
// One byte peeked without blocking: its count, 0 for EOF, -1 with errno.
ssize_t Peek(tcp::socket& socket) {
  char c;
  return ::recv(socket.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
}
bool WouldBlock() { return errno == EAGAIN || errno == EWOULDBLOCK; }
}  // namespace

awaitable<std::tuple<error_code, size_t>> ReadSome(tcp::socket& socket, asio::mutable_buffer buffer,
                                                   uint64_t* count) {
  if (!ReceiveQueueKnownEmpty(socket)) {
    error_code ec;
    const size_t n = socket.read_some(buffer, ec);
    if (ec != asio::error::would_block) {
      if (!ec && n < buffer.size()) MarkReceiveQueueEmpty(socket);
      if (count != nullptr) *count += n;
      co_return std::tuple{ec, n};
    }
    MarkReceiveQueueEmpty(socket);
  }
  // Queued without a syscall; completed by the reactor as it performs the
  // recv for the event, so this handler runs before the event loop does
  // anything else and the mark below cannot hide a newer event.
  auto [ec, n] = co_await socket.async_read_some(buffer, kUse);
  if (!ec && n < buffer.size()) MarkReceiveQueueEmpty(socket);
  if (count != nullptr) *count += n;
  co_return std::tuple{ec, n};
}

bool PeerGone(tcp::socket& socket) {
  // Nothing has arrived since the queue was last seen empty, not even a FIN
  // (it would have come as an event): no look needed.
  if (ReceiveQueueKnownEmpty(socket)) return false;
  const ssize_t n = Peek(socket);
  if (n < 0 && WouldBlock()) {
    MarkReceiveQueueEmpty(socket);  // until the next event, the next tick need not look
    return false;
  }
  return n == 0 || (n < 0 && errno != EINTR);
}

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

}  // namespace webtier::balancer
