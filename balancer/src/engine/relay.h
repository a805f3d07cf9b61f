// Relaying a member's response to the client: the head rewritten for the
// client (http_rules), the body copied as it arrives, re-chunked or
// close-delimited as the client's version needs. Used from one worker's
// thread; RelayBuffers is per worker.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>

#include "engine/connection.h"
#include "webtier/balancer/telemetry/proxy_metrics.h"

namespace webtier::balancer {

// Body copy buffers, reused from response to response. Not thread-safe.
class RelayBuffers {
 public:
  static constexpr size_t kBytes = 32 * 1024;
  std::unique_ptr<char[]> Take();
  void Return(std::unique_ptr<char[]> buffer);

 private:
  std::vector<std::unique_ptr<char[]>> free_;
};

// What the edge cache takes from a relayed answer (exchange.cc).
struct EdgeTap {
  std::string* capture = nullptr;  // a Content-Length body, appended as it is relayed
  std::string_view cache_status;   // a Cache-Status line added to the head ("": none)
};

// One response on its way to the client.
struct RelayedResponse {
  ClientConnection& client;
  UpstreamConnection& upstream;
  // Holds the member's response header; the body is read through it.
  boost::beast::http::response_parser<boost::beast::http::buffer_body>& parser;
  bool head = false;            // the request was HEAD: no body whatever the header says
  unsigned client_version = 11;  // 10 or 11
  std::string_view request_id;   // X-Request-Id to add when the member sent none
  bool keep_alive = false;       // in: the client's connection may stay; out: it does
  std::string_view codings;      // the member's transfer codings before chunked, relayed (CheckResponseFraming)
  EdgeTap tap = {};
  ProxyMetrics* metrics = nullptr;  // where a member failing mid-body is counted
};

// Counts a member answer that broke off mid-body (`ec`: the member side's
// error, a timeout when the watchdog cut it) in balancer_upstream_cut_answers_total.
void CountCutAnswer(ProxyMetrics& metrics, error_code ec);

// A member's trailer section is bounded like its head: past this, the
// answer fails as a member failing mid-body would.
inline constexpr size_t kMaxAnswerTrailerBytes = 64 * 1024;

// Reads the next piece of a chunked or close-delimited answer's body into
// `data` (at most `size` bytes, `size` > 0) through `parser`: done when body
// bytes came or the answer is complete (the trailer section, if any, is then
// in the parser's fields). A chunk-size line over kMaxChunkLineBytes or a
// trailer section over kMaxAnswerTrailerBytes is an error, so a member
// cannot make the proxy buffer without bound (Beast 1.81 bounds neither).
// The bytes it read count as `got`.
awaitable<std::tuple<error_code, size_t>> ReadBodyPiece(
    UpstreamConnection& up, boost::beast::http::response_parser<boost::beast::http::buffer_body>& parser, char* data,
    size_t size);

// A response that cannot have a body (1xx, 204) but announces one: the
// member may well send it, so its connection is not kept.
bool AnnouncesForbiddenBody(const http::response_header<>& res);

// Sends the response (its header already parsed) to the client; a member
// failing mid-body is logged and ends the client's connection (a truncated
// response can only be told by closing). True when it went through whole and
// the member's connection is clean for another request: its framing ended
// the response (not close-delimited, no body announced on a 204) and no
// member failure or client write error cut it short.
awaitable<bool> RelayResponse(RelayedResponse& r, const Timeouts& timeouts, RelayBuffers& buffers);

}  // namespace webtier::balancer
