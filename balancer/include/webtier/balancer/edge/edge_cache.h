// The edge cache: the tier's hottest answers kept in the balancer's memory,
// so that a hit costs one hop instead of two (balancer/README.md "Edge
// cache"). It holds only what the tier's shared cache may store and is fresh
// (decided with the shared cache's own rules, webtier::cache), keyed like the
// shared cache: site (scheme and normalised Host), path, normalised query,
// and the Vary variant.
//
// Coherence with the tier. Invalidations (purges by path or tag, unsafe
// methods, on any node or balancer) reach every balancer through the tier's
// invalidation channel (Erase), and an unsafe request through this balancer
// erases its URL here before its answer goes out. For `settle` after an
// erase of a URL no answer for it is kept: a webnode that has not heard of
// the purge yet may still give out the old answer from its hot copy for up
// to cache::kHotCopyWindow, and kept here it would outlive the purge by its
// whole freshness. While the channel stands
// (SetFollowing), an object is served until its freshness ends. While it
// does not, an object is served from memory for at most `window` after it
// last came from the tier; the next request after that goes to a member (the
// tier answers from its own copy), and the answer replaces the object.
// Meanwhile other requests for it are still served from memory, but only for
// another `window` (a refresh that takes longer stops being waited for). An
// object is never served past its own freshness.
//
// Admission and eviction (TinyLFU over a segmented LRU): every lookup counts
// its URL in a small frequency sketch; when the memory is full, a new object
// is admitted only if its URL was asked for more often than the object it
// would evict, so a scan of one-hit URLs cannot flush the hot set. Objects
// hit twice move from the probation segment to the protected one (80% of the
// bytes). Memory: the objects' charged bytes never exceed `capacity_bytes`;
// the sketch adds a fixed amount (sketch_bytes()).
//
// Thread-safe (sharded locks): every proxy worker shares one EdgeCache.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "webtier/cache/clock.h"
#include "webtier/cache/hot_cache.h"
#include "webtier/cache/message.h"
#include "webtier/cache/vary.h"
#include "webtier/common/mutex.h"
#include "webtier/common/thread_annotations.h"

namespace webtier::balancer::edge {

struct EdgeOptions {
  uint64_t capacity_bytes = 0;                 // --edge-cache-bytes; 0 = no edge cache
  uint64_t max_object_bytes = 1 << 20;         // --edge-cache-max-object-bytes: larger answers are not kept
  std::chrono::milliseconds window{1000};      // --edge-cache-window-ms: back to the tier at least this often
  int min_uses = 2;                            // --edge-cache-min-uses: requests for a URL before its answer is kept
  // After an erase of a URL, how long its answers are not kept (the tier's hot copies may lag that long).
  std::chrono::milliseconds settle = cache::kHotCopyWindow;
};

// One stored answer, immutable once inserted (but for its refresh marks).
struct EdgeObject {
  cache::Response response;  // status, the end-to-end fields kept (see edge_http.h), body
  std::string head_fields;   // the same fields as HTTP/1.1 lines "Name: value\r\n", ready to send
  std::string site;          // "scheme://host"
  std::string url;           // path ["?" normalised query]: what a purge names
  cache::Vary vary;          // the answer's Vary; empty when none
  std::string variant;       // the selecting fields of the request it answered (cache::SelectingFields)
  int64_t response_ms = 0;   // Unix ms when it came from the tier
  int64_t initial_age_ms = 0;  // its corrected initial age then (Age, RFC 9111 4.2.3)
  int64_t lifetime_ms = 0;     // its freshness lifetime
  uint64_t charge = 0;         // bytes charged against the capacity

  int64_t FreshUntilMs() const { return response_ms + lifetime_ms - initial_age_ms; }
  int64_t AgeMs(int64_t now_ms) const { return initial_age_ms + std::max<int64_t>(0, now_ms - response_ms); }

  // When it must next come from the tier (steady ms), and when a refresh
  // began (0: none): one request at a time refreshes.
  mutable std::atomic<int64_t> validated_until{0};
  mutable std::atomic<int64_t> refresh_started{0};
};

// What a lookup found.
struct Lookup {
  enum class Kind {
    kMiss,     // nothing usable: forward (and offer the answer to Insert)
    kHit,      // serve `object`
    kRefresh,  // `object` is due back from the tier and this request takes it there: forward
  };
  Kind kind = Kind::kMiss;
  std::shared_ptr<const EdgeObject> object;  // also on a miss when the object is only overdue
  uint64_t epoch = 0;  // pass to Insert: an answer older than a later erase of its URL is not kept
  // How often the URL was asked for lately, this request included (the
  // frequency sketch's estimate, at most 15): an answer is offered to Insert
  // only from the min_uses-th on (EdgeOptions).
  int uses = 0;
};

// The request's selecting fields for a Vary (cache::SelectingFields over its headers).
using SelectingFn = std::function<std::string(const cache::Vary&)>;

struct EdgeStats {
  uint64_t hits = 0, misses = 0, refreshes = 0;
  uint64_t inserts = 0, rejected = 0, evictions = 0, erased = 0;
  uint64_t too_few_uses = 0;  // answers not offered: their URL was asked for fewer than min_uses times
  uint64_t objects = 0, bytes = 0;
};

class EdgeCache {
 public:
  // `clock` must outlive the cache (cache::SystemClock::Get() in production).
  EdgeCache(EdgeOptions options, cache::Clock* clock);
  ~EdgeCache();
  EdgeCache(const EdgeCache&) = delete;
  EdgeCache& operator=(const EdgeCache&) = delete;

  const EdgeOptions& options() const { return options_; }
  cache::Clock& clock() const { return *clock_; }

  // Looks `url` up for `site`; `selecting` is called only for objects with Vary.
  // Counts the URL in the frequency sketch.
  Lookup Find(std::string_view site, std::string_view url, const SelectingFn& selecting);

  // Offers an answer from the tier (its freshness already assessed). Kept when
  // it fits, wins admission, no erase of its URL came after `epoch`, and the
  // last erase of its URL (or of everything) is at least `settle` ago.
  // Replaces an object of the same site, URL and variant. True when kept.
  bool Insert(std::shared_ptr<EdgeObject> object, uint64_t epoch);

  // Forgets a refresh that did not bring a storable answer back: the object
  // goes (the tier no longer gives it out as it was).
  void Drop(const std::shared_ptr<const EdgeObject>& object);

  // The epoch to pass to Insert for an answer fetched without a lookup.
  uint64_t EpochOf(std::string_view url);

  // Whether an answer to the request `lookup` was made for may be offered to
  // Insert: its URL was asked for at least min_uses times lately (an answer
  // that replaces a stored object, or came without a lookup, always may).
  // Counts the answers it turns away.
  bool MayOffer(const Lookup& lookup, bool looked_up);

  // Erases every object of `url` (all sites and variants). Returns how many.
  size_t Erase(std::string_view url);
  // Erases everything (the invalidation channel was lost for a while).
  size_t EraseAll();

  // Whether the tier's invalidation channel stands: every invalidation
  // reaches Erase, so the window need not apply.
  void SetFollowing(bool following) { following_.store(following, std::memory_order_release); }
  bool following() const { return following_.load(std::memory_order_acquire); }

  EdgeStats Stats() const;
  // Bytes the frequency sketches take (beyond the capacity).
  uint64_t sketch_bytes() const;

  // The bytes an object is charged: its strings plus a fixed overhead for
  // the index entries and the object itself.
  static uint64_t ChargeOf(const EdgeObject& object);

 private:
  struct Shard;
  Shard& ShardFor(std::string_view url);
  int64_t SteadyMs();

  const EdgeOptions options_;
  cache::Clock* const clock_;
  static constexpr size_t kShards = 16;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::atomic<bool> following_{false};
  std::atomic<uint64_t> too_few_uses_{0};
};

}  // namespace webtier::balancer::edge
