// Upgraded connections tunnelled both ways (see tunnel.h).
#include "engine/tunnel.h"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>

#include "webtier/balancer/clock.h"
#include "webtier/common/log.h"

namespace webtier::balancer {

namespace {

using namespace asio::experimental::awaitable_operators;

constexpr const char* kComponent = "proxy";

// When a byte last went through, either way.
struct Activity {
  Clock::time_point last = Clock::now();
};

// Copies what arrives on `from` to `to` until either side closes or fails.
template <typename From, typename To>
awaitable<void> Pump(From& from, To& to, char* buffer, Activity& activity) {
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

// Completes once `limit` has passed with no byte either way.
awaitable<void> IdleLimit(const Activity& activity, std::chrono::milliseconds limit) {
  Timer timer(co_await asio::this_coro::executor);
  for (;;) {
    const auto until = activity.last + limit;
    if (Clock::now() >= until) co_return;
    timer.expires_at(until);
    auto [ec] = co_await timer.async_wait(kUse);
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

}  // namespace

awaitable<void> RunTunnel(ClientConnection& client, beast::flat_buffer& client_pending, UpstreamConnection& upstream,
                          std::chrono::milliseconds idle_limit, RelayBuffers& buffers, ProxyMetrics& metrics) {
  metrics.upgraded_connections.Increment();
  Activity activity;
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
