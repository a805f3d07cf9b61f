// ResponseCache: the shared response cache in front of the routes and the
// origin. Decides what is cacheable, looks entries up in the shared store,
// coalesces misses (in-process single-flight plus a lock in the store, so one
// fill per key in the whole tier), serves stale entries while revalidating or
// when the origin fails, and bypasses the store while its breaker is open.
// docs/cache.md states the semantics.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "webtier/cache/cache_metrics.h"
#include "webtier/cache/circuit_breaker.h"
#include "webtier/cache/clock.h"
#include "webtier/cache/fill_lock.h"
#include "webtier/cache/hot_cache.h"
#include "webtier/cache/message.h"
#include "webtier/cache/origin.h"
#include "webtier/cache/record.h"
#include "webtier/cache/routes.h"
#include "webtier/cache/single_flight.h"
#include "webtier/cache/store.h"
#include "webtier/cache/worker_pool.h"
#include "webtier/common/mutex.h"
#include "webtier/common/thread_annotations.h"

namespace webtier::cache {

// The X-Cache value; kNone = the request was not eligible (no header sent).
enum class CacheStatus { kNone, kHit, kMiss, kStale, kBypass };
std::string_view CacheStatusName(CacheStatus status);  // "HIT", ...; "" for kNone

// Why a request went to the origin (RFC 9211 fwd parameter).
enum class Forward { kNone, kUriMiss, kVaryMiss, kStale, kBypass };

struct Outcome {
  Response response;
  CacheStatus cache = CacheStatus::kNone;
  std::optional<int64_t> age_seconds;  // set on HIT and STALE, and on a MISS whose origin sent Age
  std::string route;                   // metric label: the route's, "origin" or "unmatched"
  // May be handed to the other requests coalesced with the one that caused it:
  // false for Set-Cookie / private / no-store answers, which each waiter then
  // fetches for itself.
  bool shareable = true;
  // For Cache-Status (RFC 9211).
  Forward forward = Forward::kNone;
  int forward_status = 0;           // the origin's status when forwarded
  bool stored = false;              // the origin's response was stored
  bool collapsed = false;           // answered by another request's fetch
  std::optional<int64_t> ttl_s;     // remaining freshness of a stored response (negative: stale)
  std::string detail;               // extra reason ("stale-if-error", "store-unavailable", ...)
  // The normalised selecting fields (Vary) of the request the response was
  // fetched for: a coalesced request with other values fetches its own.
  std::string variant;
};

// The Cache-Status field value for `outcome` (cache name "webtier").
std::string CacheStatusField(const Outcome& outcome);

struct CacheOptions {
  std::chrono::seconds default_ttl{60};                  // --cache-ttl: the cap of heuristic freshness
  double ttl_jitter = 0.1;                               // TTL shortened by a random 0..10%
  std::chrono::seconds stale_if_error{300};              // origin failed: stale served this long unless
                                                         //   the response forbids it or sets its own
  std::chrono::seconds keep{300};                        // stale entries with validators kept this long
                                                         //   past their TTL, to be revalidated
  std::chrono::milliseconds lock_ttl{15000};             // fill lock expiry (> the slowest fill)
  std::chrono::milliseconds lock_poll{20};               // how often a waiter re-reads the store
  bool key_includes_host = true;                         // the key names the Host (off with --origin-host,
                                                         //   when the origin is always given one Host)
  size_t max_body_bytes = 8 << 20;                       // larger responses are not stored
  std::string node_id;                                   // goes into lock tokens
  uint8_t record_version = kRecordVersion;               // record format and key namespace (tests play
                                                         //   another release with another value)
};

// Redis channel on which purged keys are announced, so every node drops its hot copy.
inline constexpr char kPurgeChannel[] = "webtier:purge";

class ResponseCache {
 public:
  using Done = std::function<void(Outcome)>;

  // What the cache works with. Every pointer must outlive the cache; `workers`
  // must be destroyed before it (so queued fills finish).
  struct Parts {
    const RouteTable* routes = nullptr;  // the webnode's own routes (may be empty)
    Origin* origin = nullptr;            // null: paths matching no route answer 404
    Store* store = nullptr;              // null: caching off (everything goes to routes/origin, no X-Cache)
    HotCache* hot = nullptr;             // null: every lookup reads the store
    CircuitBreaker* breaker = nullptr;   // required with a store
    WorkerPool* workers = nullptr;       // required
    CacheMetrics* metrics = nullptr;     // required
    Clock* clock = nullptr;              // required
  };
  ResponseCache(CacheOptions options, Parts parts);

  // Answers `request` by calling `done` exactly once. Thread-safe. A hit on
  // the hot copy is answered on the calling thread. Anything that needs the
  // store goes to an idle worker, which looks it up (at most two store reads,
  // the second for a Vary variant; bounded by the store's timeouts, skipped
  // while the breaker is open) and fills a miss itself; `done` is then called
  // there. With no worker idle the calling thread does the lookup, and a miss
  // waits in the workers' queue. Everything that touches a route or the
  // origin runs on `workers`. When their queue is full: 503 with Retry-After.
  void Serve(Request request, Done done);

  // Removes the entries for "path[?query]" (under every scheme and Host it
  // was stored for, every variant of each) from the store and announces each
  // key on kPurgeChannel (every node's hot copy goes). kUnavailable when the
  // store is off or unreachable. A fill of the URL that was under way, on
  // any node, writes nothing (its origin answer may predate the purge).
  Status Purge(std::string_view path_and_query);
  // Removes every entry whose response listed `tag` in Surrogate-Key (and,
  // as Purge, fences off the fills under way of responses that list it).
  // `*purged`: how many URLs.
  Status PurgeTag(std::string_view tag, size_t* purged = nullptr);

 private:
  struct Lookup {
    enum class Kind { kFound, kMissing, kCorrupt, kUnavailable } kind = Kind::kMissing;
    std::shared_ptr<const Record> record;  // set when found (shared with the hot copy)
    bool vary_miss = false;   // the URL has entries, none for this request's variant
    uint64_t generation = 0;  // the URL entry's variant generation (0: none)
  };
  struct Fetched {
    Response response;
    bool failed = false;  // transport failure, timeout or 5xx
  };
  // What a fill starts from: the entry it may revalidate or fall back to.
  struct Previous {
    std::shared_ptr<const Record> record;
    uint64_t generation = 0;
    bool vary_miss = false;
  };
  // What a fill's request to the origin brought back.
  struct OriginAnswer {
    Fetched fetched;          // Date added when missing; freshened: the stored response the 304 updated
    int status = 0;           // the status the origin sent (304 when freshened)
    bool freshened = false;   // a 304 to the fill's validators, merged into the stored response
    int64_t request_ms = 0;   // when it was asked
    int64_t response_ms = 0;  // when it answered
  };

  // One store read and decode. `count_corrupt`: count and log an undecodable
  // record (once per request, not on every re-read while waiting for a fill).
  // With `lock`: a new fill lock in `*lock`, taken in the same step when the
  // key is absent (FillLock::ReadOrTake), so a miss's fill need not take it.
  Lookup Find(const std::string& key, bool count_corrupt = true, std::shared_ptr<FillLock>* lock = nullptr);
  // What a store read of `key` (its status and bytes) found, decoded.
  Lookup Decoded(const std::string& key, const Status& read, const std::string& bytes, bool count_corrupt);
  // The hot copy, else one store read (a fresh record read is kept hot).
  Lookup FindHot(const std::string& key, bool count_corrupt, std::shared_ptr<FillLock>* lock = nullptr);
  // The URL's entry for `request`'s variant (Vary), at most two reads.
  // `lock`: as Find's, for the URL's entry.
  Lookup Resolve(const std::string& key, const Request& request, bool count_corrupt = true,
                 std::shared_ptr<FillLock>* lock = nullptr);
  // Resolve() from the URL's entry already looked up (`url`).
  Lookup ResolveFrom(Lookup url, const std::string& key, const Request& request, bool count_corrupt);
  Fetched Fetch(const Route* route, const Request& request);
  // Runs on a worker: lock (or wait for another node's fill), fetch, store.
  // `taken`: the lock, when the lookup took it (then no other fill stored
  // the entry since); null or not held: the fill takes it.
  Outcome Fill(const std::string& key, const Route* route, const Request& request, const Previous& previous,
               const std::string& label, std::shared_ptr<FillLock> taken);
  // A fill lock for `key`, not taken yet, with a token of its own.
  std::shared_ptr<FillLock> NewLock(const std::string& key);
  // Fill's steps, in order (Fill states the sequence).
  // Takes `*lock`, waiting while another node's fill holds it; or returns the
  // fresh record that fill stored instead (the lock then not held). Without
  // the lock when the store is down (`*store_up` cleared) or the wait outlasts
  // a lock's expiry.
  std::optional<Outcome> LockOrCollapse(const std::string& key, const Request& request, const Previous& previous,
                                        const std::string& label, FillLock* lock, bool* store_up);
  // A fresh record another fill stored, newer than `previous`'s (which a client
  // may have asked to revalidate though fresh), from the URL's entry `url`
  // just read; null when none. Clears `*store_up` when the store could not be read.
  std::shared_ptr<const Record> FreshElsewhere(Lookup url, const std::string& key, const Request& request,
                                               const Previous& previous, bool* store_up);
  // The answer from `record`, which another node's fill stored (MISS, collapsed).
  Outcome Collapsed(const Request& request, const Record& record, const std::string& label);
  // Asks the origin for `request`, conditionally on `validated`'s validators when given.
  OriginAnswer AskOrigin(const Route* route, const Request& request, const Record* validated);
  // Replaces a 304's response by `validated`'s, its fields updated by the 304.
  static void FreshenFrom304(const Record& validated, OriginAnswer* answer);
  // The stale entry as the answer to the origin's failure (stale-if-error).
  Outcome StaleIfError(const Request& request, const Record& stale, int origin_status, const std::string& label);
  // The origin's answer (MISS; BYPASS when the store is down), stored first if
  // the store is up and StoreResponse finds it storable.
  Outcome StoreAndAnswer(const std::string& key, const Route* route, const Request& request,
                         const Previous& previous, OriginAnswer answer, bool store_up, FillLock* lock,
                         const std::string& label);
  // Serve's part after the key: the lookup and what follows. `hot`: the hot
  // copy's record for `key`, already looked up (null: look it up here).
  void ServeKey(const std::string& key, const Route* route, const std::string& label, Request request, Done done,
                std::shared_ptr<const Record> hot);
  // Joins the key's flight; the leader schedules Fill (runs it at once when
  // called on a worker for a client). `done` empty = background revalidation.
  // `lock`: the fill lock the lookup took, if any (released unless a fill uses it).
  void StartFill(const std::string& key, const Route* route, Request request, Previous previous, Done done,
                 const std::string& label, std::shared_ptr<FillLock> lock = nullptr);
  // Stores `response` (fetched for `request`) if RFC 9111 allows; true when
  // stored. The entry, its variant, its URL and tag indexes and the release
  // of `lock` (when held) go to the store in one round trip.
  bool StoreResponse(const std::string& key, const CachePolicy& policy, const Request& request, const Response& response,
                     int64_t request_ms, int64_t response_ms, uint64_t generation, FillLock* lock)
      WEBTIER_EXCLUDES(rng_mu_);
  // The answer from a stored record: Age, Cache-Status fields, 304 for a client that has it.
  Outcome FromRecord(const Request& request, const Record& record, CacheStatus status, const std::string& label);
  // Fetches on a worker and answers with `status`; 503 when the pool is full.
  // Unsafe methods invalidate the URL (and Location / Content-Location) on success.
  void FetchOnWorker(const Route* route, Request request, Done done, CacheStatus status, const std::string& label);
  // FetchOnWorker's work, on the calling thread (a worker).
  Outcome FetchPast(const Route* route, const Request& request, CacheStatus status, const std::string& label);
  // Deletes the URL entry `key` (and so every variant), here and in every node's hot copy.
  Status Drop(const std::string& key);
  // Marks the URL and tag indexes purged (Store::MarkPurged): the fills under
  // way that would write under them write nothing. Before any Drop.
  Status FenceFills(const std::vector<std::string>& indexes);
  // RFC 9111 4.4: after a successful unsafe request.
  void Invalidate(const Request& request, const Response& response);
  // Appends the URL's key under this record format version and the ones
  // before and after it (the releases a rolling upgrade puts side by side).
  void KeysOfEveryRelease(std::string_view path, std::string_view query, std::string_view site,
                          std::vector<std::string>* keys) const;
  // The site part of `request`'s key (cache_key.h).
  std::string SiteFor(const Request& request) const;
  uint64_t NewGeneration() WEBTIER_EXCLUDES(rng_mu_);
  // Runs `op` on the store unless the breaker is open; reports to the breaker and counts errors.
  Status Guarded(const std::function<Status()>& op);
  // Store::Run of `ops` through Guarded: the batch's failure, else the first
  // op's (an absent key is no failure).
  Status RunGuarded(std::vector<StoreOp>* ops);
  // Releases the orphaned fill locks (all, or `lock_key`'s) in one round trip;
  // those whose release fails again stay for the next try. Returns how many
  // the store answered for.
  size_t ReleaseOrphans(const std::string* lock_key = nullptr);
  // After a store command succeeded: queues one ReleaseOrphans on a worker
  // when there are orphans and no such task is queued already.
  void SweepOrphans();
  std::string NewToken() WEBTIER_EXCLUDES(rng_mu_);

  // Keeps a fresh record in the hot cache, if there is one.
  void KeepHot(const std::string& key, std::shared_ptr<const Record> record);

  const CacheOptions options_;
  const RouteTable* const routes_;
  Origin* const origin_;
  Store* const store_;
  HotCache* const hot_;
  CircuitBreaker* const breaker_;
  WorkerPool* const workers_;
  CacheMetrics* const metrics_;
  Clock* const clock_;
  SingleFlight<Outcome> flights_;
  OrphanLocks orphans_;
  std::atomic<bool> sweeping_{false};  // a SweepOrphans task is queued or running
  Mutex rng_mu_;
  std::mt19937_64 rng_ WEBTIER_GUARDED_BY(rng_mu_);
};

}  // namespace webtier::cache
