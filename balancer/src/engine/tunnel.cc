// Upgraded connections tunnelled both ways (see tunnel.h).
#include "engine/tunnel.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <cstring>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>

#include "webtier/balancer/clock.h"
#include "webtier/common/log.h"

namespace webtier::balancer {

namespace {

using namespace asio::experimental::awaitable_operators;

constexpr const char* kComponent = "proxy";

// Copies what arrives on `from` to `to` until either side closes or fails.
template <typename From, typename To>
awaitable<void> Pump(From& from, To& to, char* buffer, TunnelActivity& activity) {
  for (;;) {
    auto [ec, n] = co_await from.async_read_some(asio::buffer(buffer, RelayBuffers::kBytes), kUse);
    if (n > 0) {
      activity.last = Clock::now();
      if (co_await WriteAll(to, asio::buffer(buffer, n))) co_return;
      activity.last = Clock::now();
    }
    if (ec) co_return;
  }
}

// Sends what one side sent before the tunnel opened on to the other.
template <typename To>
awaitable<error_code> Flush(beast::flat_buffer& pending, To& to) {
  if (pending.size() == 0) co_return error_code{};
  const error_code ec = co_await WriteAll(to, pending.data());
  pending.consume(pending.size());
  co_return ec;
}

std::string Base64(const unsigned char* data, size_t size) {
  std::string out(4 * ((size + 2) / 3), '\0');
  EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(size));
  return out;
}

}  // namespace

awaitable<void> IdleLimit(const TunnelActivity& activity, std::chrono::milliseconds limit) {
  Timer timer(co_await asio::this_coro::executor);
  for (;;) {
    const auto until = activity.last + limit;
    if (Clock::now() >= until) co_return;
    timer.expires_at(until);
    auto [ec] = co_await timer.async_wait(kUse);
    if (ec) co_return;
  }
}

std::string NewWebSocketKey() {
  unsigned char nonce[16];
  if (RAND_bytes(nonce, sizeof nonce) != 1) {
    // Not a secret (RFC 6455 4.1 only asks it be fresh): any bytes will do.
    const auto now = Clock::now().time_since_epoch().count();
    std::memcpy(nonce, &now, sizeof now);
    std::memcpy(nonce + sizeof now, &now, sizeof now);
  }
  return Base64(nonce, sizeof nonce);
}

std::string WebSocketAccept(std::string_view key) {
  static constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  std::string input(key);
  input.append(kGuid);
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  return Base64(digest, sizeof digest);
}

awaitable<void> RunTunnel(ClientConnection& client, beast::flat_buffer& client_pending, UpstreamConnection& upstream,
                          std::chrono::milliseconds idle_limit, RelayBuffers& buffers, ProxyMetrics& metrics) {
  metrics.upgraded_connections.Increment();
  TunnelActivity activity;
  if (!co_await Flush(upstream.buffer, client.stream) && !co_await Flush(client_pending, upstream.stream)) {
    auto to_member = buffers.Take();
    auto to_client = buffers.Take();
    // The first to finish cancels the other two.
    co_await (Pump(client.stream, upstream.stream, to_member.get(), activity) ||
              Pump(upstream.stream, client.stream, to_client.get(), activity) || IdleLimit(activity, idle_limit));
    buffers.Return(std::move(to_member));
    buffers.Return(std::move(to_client));
  }
  error_code ignored;
  upstream.stream.close(ignored);
  client.stream.shutdown(tcp::socket::shutdown_send, ignored);
  client.stream.close(ignored);
  metrics.upgraded_connections.Decrement();
  log::Debug(kComponent, "tunnel closed").kv("member", upstream.member->serverset().id);
}

}  // namespace webtier::balancer
