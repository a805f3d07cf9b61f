// HotCache: the node-local near cache.
#include "webtier/cache/hot_cache.h"

#include <functional>

namespace webtier::cache {

HotCache::HotCache(size_t max_entries, std::chrono::milliseconds window, Clock* clock)
    : max_per_shard_(max_entries / kShards + 1), window_(window), clock_(clock) {}

HotCache::Shard& HotCache::ShardFor(const std::string& key) {
  return shards_[std::hash<std::string>()(key) % kShards];
}

std::shared_ptr<const Record> HotCache::Get(const std::string& key) {
  Shard& shard = ShardFor(key);
  std::shared_ptr<const Record> record;
  {
    MutexLock lock(&shard.mu);
    auto it = shard.entries.find(key);
    if (it == shard.entries.end()) return nullptr;
    if (clock_->SteadyNow() >= it->second.until) {
      shard.entries.erase(it);
      return nullptr;
    }
    record = it->second.record;
  }
  if (record->At(clock_->UnixMillis()) != Record::Freshness::kFresh) return nullptr;
  return record;
}

void HotCache::Put(const std::string& key, std::shared_ptr<const Record> record) {
  if (window_.count() <= 0) return;
  Shard& shard = ShardFor(key);
  const auto now = clock_->SteadyNow();
  MutexLock lock(&shard.mu);
  if (shard.entries.size() >= max_per_shard_ && shard.entries.count(key) == 0) {
    for (auto it = shard.entries.begin(); it != shard.entries.end();) {
      it = now >= it->second.until ? shard.entries.erase(it) : std::next(it);
    }
    if (shard.entries.size() >= max_per_shard_) shard.entries.erase(shard.entries.begin());
  }
  shard.entries[key] = Entry{std::move(record), now + window_};
}

void HotCache::Erase(const std::string& key) {
  Shard& shard = ShardFor(key);
  MutexLock lock(&shard.mu);
  shard.entries.erase(key);
}

void HotCache::EraseWithVariants(const std::string& key) {
  Erase(key);
  const std::string prefix = key + "#";
  for (auto& shard : shards_) {
    MutexLock lock(&shard.mu);
    for (auto it = shard.entries.begin(); it != shard.entries.end();) {
      it = it->first.compare(0, prefix.size(), prefix) == 0 ? shard.entries.erase(it) : std::next(it);
    }
  }
}

size_t HotCache::size() {
  size_t n = 0;
  for (auto& shard : shards_) {
    MutexLock lock(&shard.mu);
    n += shard.entries.size();
  }
  return n;
}

}  // namespace webtier::cache
