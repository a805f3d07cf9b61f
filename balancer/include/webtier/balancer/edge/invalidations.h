// The edge cache follows the tier's invalidation channel: every key the
// shared cache purges or invalidates, on any node, is announced on Redis
// (cache::kPurgeChannel), and each balancer erases that URL from its edge
// cache as it hears it. PUBLISH reaches every server of a replication group,
// so any of the tier's Redis servers will do (--edge-redis lists them; a
// failing one gives way to the next). Each (re)subscription empties the edge
// cache (what was announced while no subscription stood is unknown) and lets
// it serve objects for their whole freshness (EdgeCache::SetFollowing); a
// lost subscription (noticed within 2 s even when the connection dies
// silently) brings the window back.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "webtier/balancer/edge/edge_cache.h"
#include "webtier/common/net.h"

namespace webtier::balancer::edge {

class Invalidations {
 public:
  // Subscribes on its own thread, retrying every 500 ms, authenticated as
  // `user` (empty: the default user) with `password` (empty: no AUTH).
  // `edge` must outlive it.
  Invalidations(const std::vector<net::HostPort>& servers, const std::string& user, const std::string& password,
                EdgeCache& edge);
  ~Invalidations();
  Invalidations(const Invalidations&) = delete;
  Invalidations& operator=(const Invalidations&) = delete;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace webtier::balancer::edge
