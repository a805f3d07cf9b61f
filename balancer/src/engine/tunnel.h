// An upgraded client connection (WebSocket, or whatever protocol the member
// switched to with its 101): bytes are copied both ways between the client
// and the member until either side closes or fails, or --idle-timeout-ms pass
// with no byte in either direction; then both connections close. The member
// connection is never pooled afterwards. Runs on the worker's thread, as the
// last thing its client session does; touches no shared state but the
// worker's relay buffers and the balancer_upgraded_connections gauge.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "engine/connection.h"
#include "engine/relay.h"
#include "webtier/balancer/clock.h"
#include "webtier/balancer/telemetry/proxy_metrics.h"

namespace webtier::balancer {

// When a byte last went through a tunnel, either way.
struct TunnelActivity {
  Clock::time_point last = Clock::now();
};
// Completes once `limit` has passed with no byte through `activity`'s tunnel.
awaitable<void> IdleLimit(const TunnelActivity& activity, std::chrono::milliseconds limit);

// A fresh Sec-WebSocket-Key (16 random bytes, base64), for the HTTP/1.1
// Upgrade request an HTTP/2 WebSocket stream (RFC 8441) becomes.
std::string NewWebSocketKey();
// The Sec-WebSocket-Accept a member must answer `key` with (RFC 6455 4.2.2).
std::string WebSocketAccept(std::string_view key);

// Tunnels between `client` and `upstream` (whose 101 head the client already
// has). Bytes the member sent after its 101 (left in `upstream.buffer`) go to
// the client first, bytes the client sent after its request (left in
// `client_pending`) to the member first. Closes both sockets before it
// completes; counts itself in `metrics.upgraded_connections` while open.
awaitable<void> RunTunnel(ClientConnection& client, beast::flat_buffer& client_pending, UpstreamConnection& upstream,
                          std::chrono::milliseconds idle_limit, RelayBuffers& buffers, ProxyMetrics& metrics);

}  // namespace webtier::balancer
