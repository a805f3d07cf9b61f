// The webnode's Redis master: fixed or from Sentinel.
#include "webtier/webnode/redis_master.h"

#include <prometheus/counter.h>

#include "webtier/cache/sentinel.h"

namespace webtier::webnode {

std::shared_ptr<cache::RedisMaster> MakeRedisMaster(const Config& config, prometheus::Registry& registry) {
  prometheus::Counter& failovers = prometheus::BuildCounter()
                                       .Name("webnode_redis_failovers_total")
                                       .Help("Redis master changes this node followed (Sentinel failovers).")
                                       .Register(registry)
                                       .Add({});
  prometheus::Counter& rejected =
      prometheus::BuildCounter()
          .Name("webnode_redis_master_rejected_total")
          .Help("Masters named by Sentinel that were not used: unreachable, or ROLE did not answer master.")
          .Register(registry)
          .Add({});
  if (!config.redis_sentinels.empty()) {
    cache::SentinelOptions options;
    options.sentinels = config.redis_sentinels;
    options.master_name = config.redis_master_name;
    options.password = config.redis_sentinel_password;
    options.redis_password = config.redis_password;
    return std::make_shared<cache::SentinelMaster>(std::move(options), &failovers, &rejected);
  }
  if (config.redis_addr.has_value()) return std::make_shared<cache::FixedRedisMaster>(*config.redis_addr);
  return nullptr;
}

}  // namespace webtier::webnode
