// TLS handshake and close of a client connection (see tls_session.h).
#include "tls/tls_session.h"

#include <openssl/ssl.h>

#include <boost/asio/ssl/error.hpp>

#include "webtier/common/log.h"

namespace webtier::balancer {

namespace {
constexpr const char* kComponent = "tls";
}  // namespace

HandshakeResult ClassifyHandshake(error_code ec, bool timed_out, bool resumed) {
  if (!ec) return resumed ? HandshakeResult::kResumed : HandshakeResult::kFull;
  if (timed_out) return HandshakeResult::kTimeout;
  if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated || ec == asio::error::connection_reset ||
      ec == asio::error::broken_pipe || ec == asio::error::operation_aborted)
    return HandshakeResult::kClosed;
  return HandshakeResult::kFailed;
}

awaitable<bool> TlsHandshake(ClientConnection& conn, std::chrono::milliseconds deadline, ProxyMetrics& metrics,
                             std::string_view client_ip) {
  auto& tls = conn.stream.tls_stream();
  conn.SetDeadline(deadline);
  auto [ec] = co_await tls.async_handshake(kUse);
  conn.ClearDeadline();
  const HandshakeResult result = ClassifyHandshake(ec, conn.timed_out, !ec && SSL_session_reused(tls.native_handle()));
  metrics.tls_handshakes[static_cast<size_t>(result)]->Increment();
  if (!ec) co_return true;
  // A client that leaves during its handshake (a browser's spare preconnect,
  // a TCP+TLS probe, `openssl s_time`) is ordinary, not bad input: counted,
  // logged at debug, so it can never flood the log at the connection rate.
  auto line = result == HandshakeResult::kClosed ? log::Debug(kComponent, "client left during the handshake")
                                                 : log::Warn(kComponent, "handshake failed");
  line.kv("result", HandshakeResultName(result)).kv("client", client_ip);
  if (result == HandshakeResult::kFailed) line.kv("err", ec.message());
  co_return false;
}

awaitable<void> TlsShutdown(ClientConnection& conn) {
  // The client's close_notify need not be waited for (RFC 8446, 6.1): marked
  // as received, the shutdown only writes ours. A client that does not read
  // is cut at the watchdog's next tick.
  SSL* ssl = conn.stream.tls_stream().native_handle();
  SSL_set_shutdown(ssl, SSL_get_shutdown(ssl) | SSL_RECEIVED_SHUTDOWN);
  conn.SetDeadline(std::chrono::milliseconds(0));
  co_await conn.stream.tls_stream().async_shutdown(kUse);
  conn.ClearDeadline();
}

}  // namespace webtier::balancer
