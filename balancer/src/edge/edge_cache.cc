// The edge cache's store (see edge_cache.h): sharded maps of URL -> objects,
// a segmented LRU per shard, and a count-min sketch per shard for TinyLFU
// admission.
#include "webtier/balancer/edge/edge_cache.h"

#include <algorithm>
#include <bit>
#include <limits>

namespace webtier::balancer::edge {

namespace {

// Per object, beyond its strings: the object and its control block, the
// list node, the index's vector slot and map node (measured with a scan of a
// million one-hit URLs, docs/benchmarks.md "Edge cache memory").
constexpr uint64_t kObjectOverhead = 512;
// Objects one URL may have (sites x variants); the oldest goes beyond.
constexpr size_t kMaxObjectsPerUrl = 32;
// The protected segment's share of a shard's bytes.
constexpr uint64_t kProtectedPercent = 80;
// Recent erases a shard remembers one by one (for EdgeOptions::settle);
// beyond, it takes them as an erase of everything.
constexpr size_t kMaxRecentErases = 1 << 16;

uint64_t HashOf(std::string_view url) { return std::hash<std::string_view>{}(url); }

// A count-min sketch of 4-bit counters (one byte each here) in 4 rows,
// halved every `period` additions so that old popularity fades (TinyLFU's
// reset). Not thread-safe: its shard's lock guards it.
class Sketch {
 public:
  // Sized for `entries` objects: 8 counters per entry in each row, halved
  // after 10 additions per entry, so that a counter averages about one
  // between halvings and a one-hit URL rarely looks popular.
  explicit Sketch(size_t entries)
      : mask_(std::bit_ceil(entries * 8) - 1), rows_(kRows * (mask_ + 1), 0), period_(entries * 10) {}

  void Add(uint64_t hash) {
    for (size_t r = 0; r < kRows; ++r) {
      uint8_t& c = rows_[r * (mask_ + 1) + Index(hash, r)];
      if (c < kMax) ++c;
    }
    if (++additions_ >= period_) Halve();
  }

  uint8_t Estimate(uint64_t hash) const {
    uint8_t least = kMax;
    for (size_t r = 0; r < kRows; ++r) least = std::min(least, rows_[r * (mask_ + 1) + Index(hash, r)]);
    return least;
  }

  size_t bytes() const { return rows_.size(); }

 private:
  static constexpr size_t kRows = 4;
  static constexpr uint8_t kMax = 15;

  size_t Index(uint64_t hash, size_t row) const {
    uint64_t h = hash + row * 0x9E3779B97F4A7C15ULL;
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ULL;
    h ^= h >> 29;
    return static_cast<size_t>(h) & mask_;
  }
  void Halve() {
    for (uint8_t& c : rows_) c >>= 1;
    additions_ = 0;
  }

  const size_t mask_;
  std::vector<uint8_t> rows_;
  const uint64_t period_;
  uint64_t additions_ = 0;
};

struct Node {
  std::shared_ptr<const EdgeObject> object;
  bool is_protected = false;
};
using List = std::list<Node>;

struct TransparentHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

}  // namespace

struct EdgeCache::Shard {
  Shard(uint64_t capacity_bytes, size_t sketch_entries) : capacity(capacity_bytes), sketch(sketch_entries) {}

  Mutex mu;
  const uint64_t capacity;
  List probation WEBTIER_GUARDED_BY(mu);  // front: most recently used
  List protect WEBTIER_GUARDED_BY(mu);
  uint64_t probation_bytes WEBTIER_GUARDED_BY(mu) = 0;
  uint64_t protected_bytes WEBTIER_GUARDED_BY(mu) = 0;
  std::unordered_map<std::string, std::vector<List::iterator>, TransparentHash, std::equal_to<>> by_url
      WEBTIER_GUARDED_BY(mu);
  Sketch sketch WEBTIER_GUARDED_BY(mu);
  uint64_t epoch WEBTIER_GUARDED_BY(mu) = 1;  // moves on every erase of one of its URLs
  // When its URLs were last erased (steady ms, by URL hash), kept while
  // younger than EdgeOptions::settle, and when everything last was.
  std::unordered_map<uint64_t, int64_t> erased_at WEBTIER_GUARDED_BY(mu);
  size_t prune_at WEBTIER_GUARDED_BY(mu) = 1024;
  int64_t all_erased_at WEBTIER_GUARDED_BY(mu) = std::numeric_limits<int64_t>::min() / 2;
  EdgeStats stats WEBTIER_GUARDED_BY(mu);

  uint64_t bytes() const WEBTIER_REQUIRES(mu) { return probation_bytes + protected_bytes; }

  // Notes an erase of the URL hashed `hash` at `now` (steady ms). The list
  // is pruned of erases older than `settle` whenever it doubled (never
  // past kMaxRecentErases); past kMaxRecentErases live ones, it becomes one
  // erase of everything.
  void NoteErase(uint64_t hash, int64_t now, int64_t settle) WEBTIER_REQUIRES(mu) {
    erased_at[hash] = now;
    if (erased_at.size() < prune_at) return;
    std::erase_if(erased_at, [&](const auto& e) { return now - e.second >= settle; });
    if (erased_at.size() >= kMaxRecentErases) {
      erased_at.clear();
      all_erased_at = now;
    }
    prune_at = std::clamp<size_t>(2 * erased_at.size(), 1024, kMaxRecentErases);
  }

  // Whether the URL hashed `hash` was erased less than `settle` ago.
  bool Settling(uint64_t hash, int64_t now, int64_t settle) const WEBTIER_REQUIRES(mu) {
    if (now - all_erased_at < settle) return true;
    const auto e = erased_at.find(hash);
    return e != erased_at.end() && now - e->second < settle;
  }

  // Unlinks `it` from its list and its URL's index entry.
  // The object may go with its node: nothing of it is read after the erase.
  void Remove(List::iterator it) WEBTIER_REQUIRES(mu) {
    const EdgeObject& o = *it->object;
    const uint64_t charge = o.charge;
    (it->is_protected ? protected_bytes : probation_bytes) -= charge;
    auto slot = by_url.find(std::string_view(o.url));
    if (slot != by_url.end()) {
      auto& v = slot->second;
      v.erase(std::remove(v.begin(), v.end(), it), v.end());
      if (v.empty()) by_url.erase(slot);
    }
    (it->is_protected ? protect : probation).erase(it);
    --stats.objects;
    stats.bytes -= charge;
  }

  // A hit: probation -> protected; protected -> its front. The protected
  // segment's overflow goes back to probation's front.
  void Touch(List::iterator it) WEBTIER_REQUIRES(mu) {
    if (it->is_protected) {
      protect.splice(protect.begin(), protect, it);
      return;
    }
    probation_bytes -= it->object->charge;
    protected_bytes += it->object->charge;
    it->is_protected = true;
    protect.splice(protect.begin(), probation, it);
    const uint64_t limit = capacity * kProtectedPercent / 100;
    while (protected_bytes > limit && protect.size() > 1) {
      auto last = std::prev(protect.end());
      protected_bytes -= last->object->charge;
      probation_bytes += last->object->charge;
      last->is_protected = false;
      probation.splice(probation.begin(), protect, last);
    }
  }
};

EdgeCache::EdgeCache(EdgeOptions options, cache::Clock* clock) : options_(options), clock_(clock) {
  const uint64_t per_shard = options_.capacity_bytes / kShards;
  // The sketch counts for as many objects as fit at 1 KiB each (at least 64).
  const size_t entries = static_cast<size_t>(std::max<uint64_t>(64, per_shard / 1024));
  for (size_t i = 0; i < kShards; ++i) shards_.push_back(std::make_unique<Shard>(per_shard, entries));
}

EdgeCache::~EdgeCache() = default;

EdgeCache::Shard& EdgeCache::ShardFor(std::string_view url) { return *shards_[HashOf(url) % kShards]; }

int64_t EdgeCache::SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock_->SteadyNow().time_since_epoch()).count();
}

uint64_t EdgeCache::ChargeOf(const EdgeObject& o) {
  uint64_t fields = 0;
  for (const auto& [name, value] : o.response.headers) fields += name.size() + value.size() + 64;
  uint64_t vary = 0;
  for (const auto& name : o.vary.names) vary += name.size() + 32;
  return kObjectOverhead + o.response.body.size() + o.head_fields.size() + fields + vary + o.site.size() +
         2 * o.url.size() + o.variant.size();
}

Lookup EdgeCache::Find(std::string_view site, std::string_view url, const SelectingFn& selecting) {
  const int64_t now_ms = clock_->UnixMillis();
  const int64_t steady = SteadyMs();
  const uint64_t hash = HashOf(url);
  Shard& shard = *shards_[hash % kShards];
  MutexLock lock(&shard.mu);
  shard.sketch.Add(hash);
  Lookup found;
  found.epoch = shard.epoch;
  found.uses = shard.sketch.Estimate(hash);
  auto slot = shard.by_url.find(url);
  if (slot == shard.by_url.end()) {
    ++shard.stats.misses;
    return found;
  }
  for (List::iterator it : slot->second) {
    const EdgeObject& o = *it->object;
    if (o.site != site) continue;
    if (!o.vary.empty() && selecting(o.vary) != o.variant) continue;
    if (now_ms >= o.FreshUntilMs()) {
      shard.Remove(it);
      ++shard.stats.misses;
      return found;
    }
    shard.Touch(it);
    const int64_t validated = o.validated_until.load(std::memory_order_relaxed);
    if (steady < validated || following_.load(std::memory_order_relaxed)) {
      ++shard.stats.hits;
      found.kind = Lookup::Kind::kHit;
      found.object = it->object;
      return found;
    }
    found.object = it->object;
    if (steady >= validated + options_.window.count()) {
      // Overdue and its refresh has not come back: the tier answers.
      ++shard.stats.misses;
      return found;
    }
    // Due back: the first request since takes it to the tier; the others
    // are served from memory meanwhile.
    int64_t started = o.refresh_started.load(std::memory_order_relaxed);
    if (started < validated && o.refresh_started.compare_exchange_strong(started, steady)) {
      ++shard.stats.refreshes;
      found.kind = Lookup::Kind::kRefresh;
      return found;
    }
    ++shard.stats.hits;
    found.kind = Lookup::Kind::kHit;
    return found;
  }
  ++shard.stats.misses;
  return found;
}

bool EdgeCache::Insert(std::shared_ptr<EdgeObject> object, uint64_t epoch) {
  object->charge = ChargeOf(*object);
  const int64_t steady = SteadyMs();
  object->validated_until.store(steady + options_.window.count(), std::memory_order_relaxed);
  object->refresh_started.store(0, std::memory_order_relaxed);
  const uint64_t hash = HashOf(object->url);
  Shard& shard = *shards_[hash % kShards];
  MutexLock lock(&shard.mu);
  if (epoch != shard.epoch || object->charge > shard.capacity ||
      shard.Settling(hash, steady, options_.settle.count())) {
    ++shard.stats.rejected;
    return false;
  }
  // What it replaces: the same site and variant, or the same site under
  // another Vary (the tier changed how the URL varies).
  std::vector<List::iterator> replaced;
  bool was_protected = false;
  size_t of_url = 0;
  if (auto slot = shard.by_url.find(std::string_view(object->url)); slot != shard.by_url.end()) {
    of_url = slot->second.size();
    for (List::iterator it : slot->second) {
      const EdgeObject& o = *it->object;
      if (o.site != object->site) continue;
      if (o.variant == object->variant || o.vary.names != object->vary.names || o.vary.star != object->vary.star) {
        replaced.push_back(it);
        was_protected = was_protected || it->is_protected;
      }
    }
  }
  uint64_t freed = 0;
  for (List::iterator it : replaced) freed += it->object->charge;
  // The victims, from the least recently used end of probation, then of
  // protected, until the object fits. A new URL must have been asked for
  // more often than each live victim (TinyLFU); a replacement is already in.
  std::vector<List::iterator> victims;
  const int64_t now_ms = clock_->UnixMillis();
  const uint8_t frequency = shard.sketch.Estimate(hash);
  uint64_t room = shard.capacity - std::min(shard.capacity, shard.bytes() - freed);
  auto is_replaced = [&replaced](List::iterator it) {
    return std::find(replaced.begin(), replaced.end(), it) != replaced.end();
  };
  for (List* list : {&shard.probation, &shard.protect}) {
    for (auto it = list->end(); room < object->charge && it != list->begin();) {
      --it;
      if (is_replaced(it)) continue;
      const EdgeObject& v = *it->object;
      const bool expired = now_ms >= v.FreshUntilMs();
      if (!expired && replaced.empty() && frequency <= shard.sketch.Estimate(HashOf(v.url))) {
        ++shard.stats.rejected;
        return false;
      }
      victims.push_back(it);
      room += v.charge;
    }
  }
  if (room < object->charge) {
    ++shard.stats.rejected;
    return false;
  }
  for (List::iterator it : replaced) shard.Remove(it);
  for (List::iterator it : victims) {
    shard.Remove(it);
    ++shard.stats.evictions;
  }
  // One URL's objects are bounded: the first (oldest) go.
  if (of_url - replaced.size() >= kMaxObjectsPerUrl) {
    for (auto slot = shard.by_url.find(std::string_view(object->url));
         slot != shard.by_url.end() && slot->second.size() >= kMaxObjectsPerUrl;
         slot = shard.by_url.find(std::string_view(object->url))) {
      shard.Remove(slot->second.front());
      ++shard.stats.evictions;
    }
  }
  const uint64_t charge = object->charge;
  List& list = was_protected ? shard.protect : shard.probation;
  list.push_front(Node{std::move(object), was_protected});
  (was_protected ? shard.protected_bytes : shard.probation_bytes) += charge;
  auto& index = shard.by_url[list.front().object->url];
  index.push_back(list.begin());
  ++shard.stats.inserts;
  ++shard.stats.objects;
  shard.stats.bytes += charge;
  return true;
}

void EdgeCache::Drop(const std::shared_ptr<const EdgeObject>& object) {
  Shard& shard = ShardFor(object->url);
  MutexLock lock(&shard.mu);
  auto slot = shard.by_url.find(std::string_view(object->url));
  if (slot == shard.by_url.end()) return;
  for (List::iterator it : slot->second) {
    if (it->object == object) {
      shard.Remove(it);
      ++shard.stats.erased;
      return;
    }
  }
}

uint64_t EdgeCache::EpochOf(std::string_view url) {
  Shard& shard = ShardFor(url);
  MutexLock lock(&shard.mu);
  return shard.epoch;
}

bool EdgeCache::MayOffer(const Lookup& lookup, bool looked_up) {
  if (!looked_up || lookup.object != nullptr || lookup.uses >= options_.min_uses) return true;
  too_few_uses_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

size_t EdgeCache::Erase(std::string_view url) {
  const uint64_t hash = HashOf(url);
  Shard& shard = *shards_[hash % kShards];
  const int64_t now = SteadyMs();
  MutexLock lock(&shard.mu);
  ++shard.epoch;
  shard.NoteErase(hash, now, options_.settle.count());
  auto slot = shard.by_url.find(url);
  if (slot == shard.by_url.end()) return 0;
  const std::vector<List::iterator> doomed = slot->second;
  for (List::iterator it : doomed) shard.Remove(it);
  shard.stats.erased += doomed.size();
  return doomed.size();
}

size_t EdgeCache::EraseAll() {
  const int64_t now = SteadyMs();
  size_t n = 0;
  for (size_t i = 0; i < kShards; ++i) {
    Shard& shard = *shards_[i];
    MutexLock lock(&shard.mu);
    ++shard.epoch;
    shard.erased_at.clear();
    shard.all_erased_at = now;
    n += shard.probation.size() + shard.protect.size();
    shard.stats.erased += shard.probation.size() + shard.protect.size();
    shard.stats.objects = 0;
    shard.stats.bytes = 0;
    shard.probation.clear();
    shard.protect.clear();
    shard.by_url.clear();
    shard.probation_bytes = shard.protected_bytes = 0;
  }
  return n;
}

EdgeStats EdgeCache::Stats() const {
  EdgeStats total;
  for (size_t i = 0; i < kShards; ++i) {
    Shard& shard = *shards_[i];
    MutexLock lock(&shard.mu);
    const EdgeStats s = shard.stats;
    total.hits += s.hits;
    total.misses += s.misses;
    total.refreshes += s.refreshes;
    total.inserts += s.inserts;
    total.rejected += s.rejected;
    total.evictions += s.evictions;
    total.erased += s.erased;
    total.objects += s.objects;
    total.bytes += s.bytes;
  }
  total.too_few_uses = too_few_uses_.load(std::memory_order_relaxed);
  return total;
}

uint64_t EdgeCache::sketch_bytes() const {
  uint64_t n = 0;
  for (size_t i = 0; i < kShards; ++i) {
    Shard& shard = *shards_[i];
    MutexLock lock(&shard.mu);
    n += shard.sketch.bytes();
  }
  return n;
}

}  // namespace webtier::balancer::edge
