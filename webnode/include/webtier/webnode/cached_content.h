// The webnode's ContentService: the demo app (or --origin) behind the shared
// response cache (webtier::cache), plus POST /admin/purge.
#pragma once

#include <prometheus/registry.h>

#include <memory>
#include <vector>

#include "webtier/cache/redis_master.h"
#include "webtier/cache/routes.h"
#include "webtier/webnode/config.h"
#include "webtier/webnode/content.h"

namespace webtier::otlp {
class Exporter;
}

namespace webtier::webnode {

// Builds everything from `config`, which Finalize() has accepted (no I/O:
// Redis and the origin are contacted on first use, so neither being down at
// start-up is fatal). `redis_master` (MakeRedisMaster, redis_master.h) says
// where Redis is; nullptr turns the cache off. Registers the
// cache/origin/redis metrics on `registry`, which must outlive the service.
// `routes` are added before the demo app's (which are only present without
// --origin); see webtier/cache/routes.h for the extension point.
//
// Shutdown order: destroy the service after the HTTP server has stopped
// dispatching (NodeServer::Shutdown) and before the server object itself.
// The destructor waits for in-flight fills (at most the slowest origin fetch)
// and sends their Replies, which point into the server's state.
// With `spans` (outliving the service), each origin fetch is a span of its
// own (kind client), the child of the request's and the origin's parent.
std::unique_ptr<ContentService> MakeCachedContent(const Config& config, prometheus::Registry& registry,
                                                  std::shared_ptr<cache::RedisMaster> redis_master,
                                                  std::vector<cache::Route> routes = {},
                                                  otlp::Exporter* spans = nullptr);

// The span exporter of --otlp-endpoint (null without it), counted in
// webnode_spans_total (registered either way).
std::unique_ptr<otlp::Exporter> MakeSpanExporter(const Config& config, prometheus::Registry& registry);

}  // namespace webtier::webnode
