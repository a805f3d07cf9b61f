// The extension point for everything the webnode serves beyond its built-in
// routes (/ and /health publicly; /metrics, /health, /ready on the admin
// listener): the cache, the demo app, --origin.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include "webtier/cache/message.h"
#include "webtier/webnode/reply.h"

namespace webtier::webnode {

// A request as content sees it: plain values, no Pistache type. The server
// converts each Pistache request once (server.cc), Cookie headers included
// (Pistache keeps them apart). Headers are a list of name/value pairs, but
// Pistache 0.0.5 has already kept one value per name and lost their order.
using Request = cache::Request;

class ContentService {
 public:
  virtual ~ContentService() = default;
  // Called on a Pistache reactor thread for every request that is not a
  // built-in route. Must not block that thread on slow work (origin fetches,
  // CPU-heavy routes): hand `reply` to another thread and Send() from there.
  virtual void Handle(Request request, Reply reply) = 0;
  // A request for /admin/... on the admin listener (never the public one).
  virtual void HandleAdmin(Request request, Reply reply) {
    (void)request;
    reply.set_route("/admin");
    reply.Send(404, R"({"error":"not found"})");
  }
  // The state of what the content depends on (Redis, the origin), for the
  // body of /health: reported, never judged, since a shared dependency must
  // not fail every node's liveness at once. Any thread.
  virtual void DescribeDependencies(nlohmann::json* out) const { (void)out; }
};

}  // namespace webtier::webnode
