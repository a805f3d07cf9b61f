// Relaying a member's response to the client: the head rewritten for the
// client (http_rules), the body copied as it arrives, re-chunked or
// close-delimited as the client's version needs. Used from one worker's
// thread; RelayBuffers is per worker.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>

#include "engine/connection.h"

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
};

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
