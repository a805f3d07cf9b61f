// The TLS-only steps of a client connection accepted on --tls-listen: the
// server handshake under the same deadline as a request header (a slow
// handshake is a slowloris too), counted in balancer_tls_handshakes_total
// with one log line per failure; and the close_notify sent before a clean
// close. Run from the client session's coroutine on its worker's thread.
#pragma once

#include <string_view>

#include "engine/connection.h"
#include "webtier/balancer/telemetry/proxy_metrics.h"

namespace webtier::balancer {

// Runs the server handshake on `conn.stream` (which must be TLS) within
// `deadline` (the worker's watchdog enforces it). True when the connection
// may carry requests.
awaitable<bool> TlsHandshake(ClientConnection& conn, std::chrono::milliseconds deadline, ProxyMetrics& metrics,
                             std::string_view client_ip);

// Sends close_notify (without waiting for the client's); the caller closes
// the socket afterwards.
awaitable<void> TlsShutdown(ClientConnection& conn);

// The result label for a handshake that ended with `ec` (`timed_out`: the
// deadline cut it).
HandshakeResult ClassifyHandshake(error_code ec, bool timed_out, bool resumed);

}  // namespace webtier::balancer
