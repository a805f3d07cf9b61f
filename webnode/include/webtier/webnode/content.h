// The extension point for everything the webnode serves beyond its built-in
// routes (/, /health, /ready, /metrics): the cache, the demo app, --origin.
#pragma once

#include <pistache/http.h>

#include "webtier/webnode/reply.h"

namespace webtier::webnode {

class ContentService {
 public:
  virtual ~ContentService() = default;
  // Called on a Pistache reactor thread for every request that is not a
  // built-in route. Must not block that thread on slow work (origin fetches,
  // CPU-heavy routes): hand `reply` to another thread and Send() from there.
  virtual void Handle(const Pistache::Http::Request& request, Reply reply) = 0;
};

}  // namespace webtier::webnode
