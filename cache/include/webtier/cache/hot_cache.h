// A node-local copy of records recently read from Redis, kept for a short
// window so that hot keys do not cost a Redis round trip on every hit.
// Redis stays the shared truth: an entry here lives at most `window` (and
// never past the record's own freshness), and purges reach every node's copy
// through a Redis channel (see RedisSubscriber).
#pragma once

#include <array>
#include <chrono>
#include <memory>
#include <string>
#include <unordered_map>

#include "webtier/cache/clock.h"
#include "webtier/cache/record.h"
#include "webtier/common/mutex.h"
#include "webtier/common/thread_annotations.h"

namespace webtier::cache {

// How long a node's hot copy may be served without reading Redis: so also
// how long after a purge a node that has not yet heard it may still give out
// the purged answer (the balancer's edge cache keeps no answer for a URL for
// this long after erasing it).
inline constexpr std::chrono::milliseconds kHotCopyWindow{1000};

// Thread-safe (sharded locks). Bounded: at most `max_entries`; when a shard is
// full, expired entries are dropped first, then an arbitrary one.
class HotCache {
 public:
  HotCache(size_t max_entries, std::chrono::milliseconds window, Clock* clock);

  // The record if it was put less than `window` ago and is still fresh; else nullptr.
  std::shared_ptr<const Record> Get(const std::string& key);
  void Put(const std::string& key, std::shared_ptr<const Record> record);
  void Erase(const std::string& key);
  // Erases `key` and every variant key of it (VariantKey(key, ...), vary.h).
  void EraseWithVariants(const std::string& key);
  size_t size();

 private:
  struct Entry {
    std::shared_ptr<const Record> record;
    std::chrono::steady_clock::time_point until;
  };
  struct Shard {
    Mutex mu;
    std::unordered_map<std::string, Entry> entries WEBTIER_GUARDED_BY(mu);
  };
  static constexpr size_t kShards = 16;
  Shard& ShardFor(const std::string& key);

  const size_t max_per_shard_;
  const std::chrono::milliseconds window_;
  Clock* const clock_;
  std::array<Shard, kShards> shards_;
};

}  // namespace webtier::cache
