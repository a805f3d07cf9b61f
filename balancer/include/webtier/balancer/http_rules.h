// The HTTP rules the proxy applies to every message, kept free of sockets so
// they can be unit-tested and fuzzed: request framing checks (no smuggling),
// hop-by-hop stripping and the forwarding headers.
#pragma once

#include <string>
#include <string_view>

#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>

namespace webtier::balancer {

// Checks what Beast's parser lets through but a proxy must not forward:
// Content-Length repeated (even with equal values) or given as a list,
// Content-Length together with Transfer-Encoding, a Transfer-Encoding whose
// last coding is not chunked or on HTTP/1.0, a missing or repeated Host on
// HTTP/1.1. Returns "" when the framing is fine, else the reason (for the log).
std::string_view CheckRequestFraming(const boost::beast::http::request_header<>& header);

// Removes hop-by-hop fields: those named in Connection, then Connection,
// Keep-Alive, Proxy-*, TE, Trailer, Upgrade. Transfer-Encoding is left to the
// caller (it frames the body).
void StripHopByHop(boost::beast::http::fields& fields);

// GET, HEAD, OPTIONS, PUT, DELETE (and TRACE): safe to send twice.
bool IsIdempotent(boost::beast::http::verb method);

// Prepares a parsed client request for the upstream: hop-by-hop fields and
// Transfer-Encoding removed (the body is whole, so it is sent with a
// Content-Length), X-Forwarded-For appended with `client_ip`,
// X-Forwarded-Proto set to http, X-Request-Id kept or set to `new_request_id`.
void RewriteRequestForUpstream(boost::beast::http::request<boost::beast::http::string_body>& req,
                               std::string_view client_ip, std::string_view new_request_id);

// 32 lower-case hex digits from a per-thread random generator.
std::string NewRequestId();

}  // namespace webtier::balancer
