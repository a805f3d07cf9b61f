// Where the webnode's Redis master is, from its Config: the fixed --redis
// address, or the one Sentinel names (--redis-sentinel), followed across
// failovers. Built in main() and shared by the cache (RedisStore, the purge
// subscriber) and /health.
#pragma once

#include <prometheus/registry.h>

#include <memory>

#include "webtier/cache/redis_master.h"
#include "webtier/webnode/config.h"

namespace webtier::webnode {

// nullptr when the cache is off (no --redis, no --redis-sentinel). Registers
// webnode_redis_failovers_total on `registry` (0 unless following Sentinel),
// which must outlive the result. With Sentinel, starts its thread (no other
// I/O here: Sentinel being down at start-up is not fatal).
std::shared_ptr<cache::RedisMaster> MakeRedisMaster(const Config& config, prometheus::Registry& registry);

}  // namespace webtier::webnode
