// The edge cache on the tier's invalidation channel (see invalidations.h).
#include "webtier/balancer/edge/invalidations.h"

#include "edge/edge_http.h"
#include "webtier/cache/redis_master.h"
#include "webtier/cache/redis_store.h"
#include "webtier/cache/response_cache.h"
#include "webtier/common/log.h"

namespace webtier::balancer::edge {

struct Invalidations::Impl {
  std::unique_ptr<cache::RedisSubscriber> subscriber;
};

Invalidations::Invalidations(const std::vector<net::HostPort>& servers, const std::string& user,
                             const std::string& password, EdgeCache& edge)
    : impl_(std::make_unique<Impl>()) {
  cache::RedisOptions options;
  options.master = std::make_shared<cache::RotatingRedisMaster>(servers);
  options.user = user;
  options.password = password;
  auto on_message = [&edge](const std::string& key) {
    const std::string url = UrlOfCacheKey(key);
    if (url.empty()) return;
    const size_t n = edge.Erase(url);
    if (n > 0) log::Debug("edge", "invalidated").kv("url", url).kv("objects", n);
  };
  // Subscribed: what was announced while no subscription stood is unknown, so
  // everything goes; from then on every invalidation arrives. Lost: the
  // window applies again at once.
  auto on_state = [&edge](bool subscribed) {
    if (!subscribed) {
      edge.SetFollowing(false);
      log::Warn("edge", "invalidation channel lost; edge objects go back to the tier once per window");
      return;
    }
    const size_t n = edge.EraseAll();
    edge.SetFollowing(true);
    log::Info("edge", "following the invalidation channel").kv("erased", n);
  };
  impl_->subscriber = std::make_unique<cache::RedisSubscriber>(std::move(options), cache::kPurgeChannel,
                                                               std::move(on_message), std::chrono::milliseconds(500),
                                                               std::move(on_state));
}

Invalidations::~Invalidations() = default;

}  // namespace webtier::balancer::edge
