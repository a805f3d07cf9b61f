// ResponseCache: lookup, coalesced fill, revalidation, stale serving,
// invalidation, breaker bypass.
#include "webtier/cache/response_cache.h"

#include <exception>
#include <thread>

#include "webtier/cache/cache_control.h"
#include "webtier/cache/cache_key.h"
#include "webtier/cache/conditional.h"
#include "webtier/cache/fill_lock.h"
#include "webtier/cache/freshness.h"
#include "webtier/cache/http_date.h"
#include "webtier/cache/vary.h"
#include "webtier/common/log.h"

namespace webtier::cache {
namespace {

bool HasCredentials(const Request& r) { return HasHeader(r.headers, "Authorization") || HasHeader(r.headers, "Cookie"); }

// RFC 9110 9.2.1: everything but these may change state on the origin.
bool IsSafe(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "TRACE";
}

// Whether a response meant for one client may be given to another.
bool Shareable(const Response& response) {
  if (HasHeader(response.headers, "Set-Cookie")) return false;
  const CacheControl cc = EffectiveCacheControl(response.headers);
  return !cc.is_private && !cc.no_store;
}

// A coalesced request whose selecting fields differ from the fetching one's
// (or any request, for Vary: *) must not be given the fetched response.
bool OtherVariant(const Outcome& o, const Request& request) {
  const Vary vary = ParseVary(o.response.headers);
  if (vary.star) return true;
  return !vary.names.empty() && SelectingFields(vary, request.headers) != o.variant;
}

// The full response as this client asked for it: a 304 when it has it, a 206
// for one byte range.
void AnswerFor(const Request& request, Response* response) {
  if (ClientHasIt(request, *response)) {
    *response = NotModifiedFor(*response);
  } else {
    ApplyRange(request, response);
  }
}

// RFC 9111 5.2.1: whether the client's own directives accept `record` as it is now.
enum class ClientView { kFresh, kStaleAccepted, kNeedsOrigin };
ClientView AsTheClientSeesIt(const CacheControl& rd, const Record& record, int64_t now) {
  const int64_t age_s = record.AgeMs(now) / 1000;
  const int64_t left_s = (record.ttl_ms - record.AgeMs(now)) / 1000;
  const bool fresh = record.At(now) == Record::Freshness::kFresh;
  if (fresh && !rd.no_cache && (!rd.max_age || age_s <= *rd.max_age) && (!rd.min_fresh || left_s >= *rd.min_fresh)) {
    return ClientView::kFresh;
  }
  const bool may_be_stale = (record.flags & (Record::kNoStale | Record::kAlwaysRevalidate)) == 0;
  if (!fresh && may_be_stale && !rd.no_cache && rd.max_stale.has_value() && -left_s <= *rd.max_stale &&
      (!rd.max_age || age_s <= *rd.max_age)) {
    return ClientView::kStaleAccepted;
  }
  return ClientView::kNeedsOrigin;
}

// The stored entry a fill may revalidate with its validators (a 200 that has
// one), or null: then the fill asks unconditionally.
const Record* Revalidatable(const Record* stale) {
  return stale != nullptr && stale->response.status == 200 && HasValidator(stale->response) ? stale : nullptr;
}

// Whether a fill answers with its stale entry rather than the origin's: only
// when the origin failed and the entry is within a stale window that allows it
// (stale-while-revalidate or stale-if-error), never one that is fresh or past them.
bool StaleAnswersFailure(bool origin_failed, const Record* stale, int64_t now) {
  const Record::Freshness state = stale != nullptr ? stale->At(now) : Record::Freshness::kExpired;
  return origin_failed && state != Record::Freshness::kExpired && state != Record::Freshness::kFresh;
}

Response Overloaded() {
  Response r = ErrorResponse(503, "overloaded");
  r.headers.emplace_back("Retry-After", "1");
  return r;
}

}  // namespace

ResponseCache::ResponseCache(CacheOptions options, Parts parts)
    : options_(std::move(options)),
      routes_(parts.routes),
      origin_(parts.origin),
      store_(parts.store),
      hot_(parts.hot),
      breaker_(parts.breaker),
      workers_(parts.workers),
      metrics_(parts.metrics),
      clock_(parts.clock),
      rng_(std::random_device{}()) {}

void ResponseCache::KeepHot(const std::string& key, std::shared_ptr<const Record> record) {
  if (hot_ != nullptr) hot_->Put(key, std::move(record));
}

Status ResponseCache::Guarded(const std::function<Status()>& op) {
  if (!breaker_->Allow()) return Status(ErrorCode::kUnavailable, "redis circuit open");
  Status s = op();
  if (s.ok() || s.code() == ErrorCode::kNotFound) {
    breaker_->RecordSuccess();
    if (!orphans_.empty()) SweepOrphans();
  } else {
    metrics_->redis_errors.Increment();
    uint64_t trips = breaker_->trips();
    breaker_->RecordFailure();
    if (breaker_->trips() != trips) {
      log::Warn("redis", "circuit opened, bypassing the cache").kv("err", s.ToString());
    } else {
      log::Warn("redis", "command failed").kv("err", s.ToString());
    }
  }
  metrics_->breaker_open.Set(breaker_->state() == CircuitBreaker::State::kClosed ? 0 : 1);
  return s;
}

Status ResponseCache::RunGuarded(std::vector<StoreOp>* ops) {
  return Guarded([&] {
    if (Status s = store_->Run(ops); !s.ok()) return s;
    for (const StoreOp& op : *ops) {
      if (!op.status.ok() && op.status.code() != ErrorCode::kNotFound) return op.status;
    }
    return Status::Ok();
  });
}

std::shared_ptr<FillLock> ResponseCache::NewLock(const std::string& key) {
  return std::make_shared<FillLock>(
      store_, LockKey(key), NewToken(), [this](const std::function<Status()>& op) { return Guarded(op); },
      [this](const std::string& lock_key, const std::string& token) {
        orphans_.Add({lock_key, token, clock_->SteadyNow() + options_.lock_ttl});
      });
}

size_t ResponseCache::ReleaseOrphans(const std::string* lock_key) {
  std::vector<OrphanLocks::Entry> entries = orphans_.Take(clock_->SteadyNow(), lock_key);
  if (entries.empty()) return 0;
  std::vector<StoreOp> ops;
  ops.reserve(entries.size());
  for (const OrphanLocks::Entry& e : entries) ops.push_back(StoreOp::Unlock(e.lock_key, e.token));
  RunGuarded(&ops).IgnoreError();  // counted there
  size_t released = 0;
  for (size_t i = 0; i < ops.size(); ++i) {
    if (ops[i].status.ok()) {
      ++released;
    } else {
      orphans_.Add(std::move(entries[i]));
    }
  }
  metrics_->orphan_locks.Increment(static_cast<double>(released));
  return released;
}

void ResponseCache::SweepOrphans() {
  if (sweeping_.exchange(true)) return;
  const bool queued = workers_->Submit([this] {
    ReleaseOrphans();
    sweeping_ = false;
  });
  if (!queued) sweeping_ = false;  // the next success tries again
}

ResponseCache::Lookup ResponseCache::Find(const std::string& key, bool count_corrupt, std::shared_ptr<FillLock>* lock) {
  std::string bytes;
  if (lock != nullptr) {
    *lock = NewLock(key);
    return Decoded(key, (*lock)->ReadOrTake(key, options_.lock_ttl, &bytes), bytes, count_corrupt);
  }
  Status s = Guarded([&] { return store_->Get(key, &bytes); });
  return Decoded(key, s, bytes, count_corrupt);
}

ResponseCache::Lookup ResponseCache::Decoded(const std::string& key, const Status& read, const std::string& bytes,
                                             bool count_corrupt) {
  Lookup out;
  if (read.code() == ErrorCode::kNotFound) {
    out.kind = Lookup::Kind::kMissing;
    return out;
  }
  if (!read.ok()) {
    out.kind = Lookup::Kind::kUnavailable;
    return out;
  }
  auto decoded = std::make_shared<Record>();
  Status d = DecodeRecord(bytes, decoded.get(), options_.record_version);
  if (d.code() == ErrorCode::kNotFound) {
    out.kind = Lookup::Kind::kMissing;  // another format version: replaced by the fill
  } else if (!d.ok()) {
    if (count_corrupt) {
      metrics_->corrupt_records.Increment();
      log::Warn("cache", "undecodable record, treated as a miss").kv("key", key).kv("err", d.message());
    }
    out.kind = Lookup::Kind::kCorrupt;
  } else {
    out.kind = Lookup::Kind::kFound;
    out.record = std::move(decoded);
  }
  return out;
}

ResponseCache::Lookup ResponseCache::FindHot(const std::string& key, bool count_corrupt,
                                             std::shared_ptr<FillLock>* lock) {
  if (hot_ != nullptr) {
    if (std::shared_ptr<const Record> hot = hot_->Get(key)) {
      metrics_->hot_hits.Increment();
      Lookup l;
      l.kind = Lookup::Kind::kFound;
      l.record = std::move(hot);
      return l;
    }
  }
  Lookup l = Find(key, count_corrupt, lock);
  if (l.kind == Lookup::Kind::kFound && l.record->At(clock_->UnixMillis()) == Record::Freshness::kFresh) {
    KeepHot(key, l.record);
  }
  return l;
}

ResponseCache::Lookup ResponseCache::Resolve(const std::string& key, const Request& request, bool count_corrupt,
                                             std::shared_ptr<FillLock>* lock) {
  return ResolveFrom(FindHot(key, count_corrupt, lock), key, request, count_corrupt);
}

ResponseCache::Lookup ResponseCache::ResolveFrom(Lookup url, const std::string& key, const Request& request,
                                                 bool count_corrupt) {
  if (url.kind != Lookup::Kind::kFound) return url;
  const Vary vary = ParseVary(url.record->response.headers);
  if (vary.empty()) return url;
  const std::string variant = SelectingFields(vary, request.headers);
  url.generation = url.record->generation;
  if (!vary.star && url.record->variant == variant) return url;
  Lookup v = vary.star ? Lookup{} : FindHot(VariantKey(key, url.record->generation, variant), count_corrupt);
  v.generation = url.record->generation;
  if (v.kind == Lookup::Kind::kFound && v.record->variant == variant) return v;
  if (v.kind == Lookup::Kind::kUnavailable) return v;
  v.kind = Lookup::Kind::kMissing;
  v.vary_miss = true;
  return v;
}

Outcome ResponseCache::FromRecord(const Request& request, const Record& record, CacheStatus status,
                                  const std::string& label) {
  const int64_t now = clock_->UnixMillis();
  Outcome out{record.response, status, record.AgeSeconds(now), label};
  out.ttl_s = (record.ttl_ms - record.AgeMs(now)) / 1000;
  out.variant = record.variant;
  AnswerFor(request, &out.response);
  return out;
}

namespace {

// Set while a worker runs ServeKey for a client: its fill then runs on that
// worker too, instead of waking another.
thread_local bool t_serving_on_worker = false;

struct ServingOnWorker {
  ServingOnWorker() { t_serving_on_worker = true; }
  ~ServingOnWorker() { t_serving_on_worker = false; }
  ServingOnWorker(const ServingOnWorker&) = delete;
  ServingOnWorker& operator=(const ServingOnWorker&) = delete;
};

}  // namespace

void ResponseCache::Serve(Request request, Done done) {
  const Route* route = routes_ != nullptr ? routes_->Match(request.path) : nullptr;
  if (route == nullptr && origin_ == nullptr) {
    done(Outcome{ErrorResponse(404, "not found"), CacheStatus::kNone, std::nullopt, "unmatched"});
    return;
  }
  std::string label = route != nullptr ? route->label : "origin";
  const CachePolicy policy = route != nullptr ? route->policy : CachePolicy{};
  const bool eligible = store_ != nullptr && policy.cacheable &&
                        (request.method == "GET" || request.method == "HEAD") &&
                        (policy.cache_with_credentials || !HasCredentials(request));
  if (!eligible) {
    FetchOnWorker(route, std::move(request), std::move(done), CacheStatus::kNone, label);
    return;
  }

  const std::string key = CacheKey(request.path, request.query, SiteFor(request), options_.record_version);
  std::shared_ptr<const Record> hot = hot_ != nullptr ? hot_->Get(key) : nullptr;
  if (hot == nullptr && !t_serving_on_worker) {
    // The store's round trip is not waited for on the server's thread while
    // a worker is free: that thread goes on reading requests, so the lookups
    // of requests that arrive together reach Redis together, and a miss is
    // fetched and stored by the worker that looked it up (one hand-off, not
    // two). With every worker busy (a slow origin) the lookup stays here, so
    // hits are still answered.
    auto parked = std::make_shared<std::pair<Request, Done>>(std::move(request), std::move(done));
    std::function<void()> task = [this, key, route, label, parked] {
      const ServingOnWorker serving;
      ServeKey(key, route, label, std::move(parked->first), std::move(parked->second), nullptr);
    };
    if (workers_->SubmitIfIdle(task)) return;
    request = std::move(parked->first);
    done = std::move(parked->second);
  }
  ServeKey(key, route, label, std::move(request), std::move(done), std::move(hot));
}

void ResponseCache::ServeKey(const std::string& key, const Route* route, const std::string& label, Request request,
                             Done done, std::shared_ptr<const Record> hot) {
  request.method = "GET";  // HEAD is answered from the GET entry (the Reply drops the body)
  const CacheControl asked = ParseCacheControl(JoinedField(request.headers, "Cache-Control"));
  // A miss takes the fill lock in the same round trip as its lookup.
  std::shared_ptr<FillLock> lock;
  Lookup found;
  if (hot != nullptr) {
    metrics_->hot_hits.Increment();
    Lookup url;
    url.kind = Lookup::Kind::kFound;
    url.record = std::move(hot);
    found = ResolveFrom(std::move(url), key, request, /*count_corrupt=*/true);
  } else {
    found = Resolve(key, request, /*count_corrupt=*/true, &lock);
  }
  Previous previous;
  previous.generation = found.generation;
  previous.vary_miss = found.vary_miss;
  const int64_t now = clock_->UnixMillis();
  const ClientView view =
      found.kind == Lookup::Kind::kFound ? AsTheClientSeesIt(asked, *found.record, now) : ClientView::kNeedsOrigin;
  if (view == ClientView::kFresh || view == ClientView::kStaleAccepted) {
    metrics_->hit.Increment();
    Outcome out = FromRecord(request, *found.record, view == ClientView::kFresh ? CacheStatus::kHit : CacheStatus::kStale,
                             label);
    if (view == ClientView::kStaleAccepted) out.detail = "max-stale";
    done(std::move(out));
    return;
  }
  if (asked.only_if_cached) {  // RFC 9111 5.2.1.7: nothing usable stored
    Outcome out{ErrorResponse(504, "not cached (only-if-cached)"), CacheStatus::kMiss, std::nullopt, label};
    out.detail = "only-if-cached";
    done(std::move(out));
    return;
  }
  const bool client_revalidates = asked.no_cache || asked.max_age.has_value() || asked.min_fresh.has_value();
  switch (found.kind) {
    case Lookup::Kind::kUnavailable:
      metrics_->bypass.Increment();
      if (t_serving_on_worker) {  // already on a worker: no second hand-off
        done(FetchPast(route, request, CacheStatus::kBypass, label));
        return;
      }
      FetchOnWorker(route, std::move(request), std::move(done), CacheStatus::kBypass, label);
      return;
    case Lookup::Kind::kFound:
      switch (client_revalidates ? Record::Freshness::kExpired : found.record->At(now)) {
        case Record::Freshness::kFresh:  // handled above
        case Record::Freshness::kStaleRevalidate: {
          metrics_->stale.Increment();
          Outcome out = FromRecord(request, *found.record, CacheStatus::kStale, label);
          out.detail = "stale-while-revalidate";
          previous.record = std::move(found.record);
          StartFill(key, route, std::move(request), std::move(previous), nullptr, label);
          done(std::move(out));
          return;
        }
        case Record::Freshness::kStaleIfError:
        case Record::Freshness::kExpired:
          previous.record = std::move(found.record);
          break;
      }
      break;
    case Lookup::Kind::kMissing:
    case Lookup::Kind::kCorrupt:
      break;
  }
  metrics_->miss.Increment();
  StartFill(key, route, std::move(request), std::move(previous), std::move(done), label, std::move(lock));
}

void ResponseCache::StartFill(const std::string& key, const Route* route, Request request, Previous previous,
                              Done done, const std::string& label, std::shared_ptr<FillLock> lock) {
  const bool revalidation = !done;
  // Written before the fill is queued, read when it completes (the pool's lock orders them).
  auto leader = std::make_shared<bool>(false);
  SingleFlight<Outcome>::Callback waiter;
  if (!revalidation) {
    auto own = std::make_shared<Request>(request);  // every waiter is answered for its own request
    waiter = [this, leader, own, route, label, done = std::move(done)](const Outcome& o) {
      if (!*leader && (!o.shareable || OtherVariant(o, *own))) {
        FetchOnWorker(route, *own, done, CacheStatus::kMiss, label);
        return;
      }
      Outcome mine = o;
      mine.collapsed = mine.collapsed || !*leader;
      AnswerFor(*own, &mine.response);
      done(std::move(mine));
    };
  }
  if (!flights_.Join(key, std::move(waiter))) {
    if (!revalidation) metrics_->coalesced_local.Increment();
    return;  // a lock this request took is released as `lock` goes (the leader's fill takes its own)
  }
  *leader = true;
  if (revalidation) metrics_->revalidations.Increment();
  std::function<void()> fill = [this, key, route, label, request = std::move(request), previous = std::move(previous),
                                lock = std::move(lock)]() mutable {
    Outcome out;
    try {
      out = Fill(key, route, request, previous, label, std::move(lock));
    } catch (const std::exception& e) {
      log::Error("cache", "fill failed").kv("key", key).kv("err", e.what());
      out = Outcome{ErrorResponse(500, "internal error"), CacheStatus::kNone, std::nullopt, label};
    }
    flights_.Complete(key, out);
  };
  // A worker serving a client fills the miss itself. A revalidation is
  // queued: the stale answer it goes with must not wait for it.
  if (t_serving_on_worker && !revalidation) {
    fill();
    return;
  }
  const bool queued = workers_->Submit(std::move(fill));
  if (!queued) flights_.Complete(key, Outcome{Overloaded(), CacheStatus::kNone, std::nullopt, label});
}

void ResponseCache::FetchOnWorker(const Route* route, Request request, Done done, CacheStatus status,
                                  const std::string& label) {
  auto shared_done = std::make_shared<Done>(std::move(done));
  const bool queued = workers_->Submit([this, route, label, status, request = std::move(request), shared_done] {
    (*shared_done)(FetchPast(route, request, status, label));
  });
  if (!queued) (*shared_done)(Outcome{Overloaded(), CacheStatus::kNone, std::nullopt, label});
}

Outcome ResponseCache::FetchPast(const Route* route, const Request& request, CacheStatus status,
                                 const std::string& label) {
  Fetched f = Fetch(route, request);
  if (!IsSafe(request.method) && store_ != nullptr && f.response.status >= 200 && f.response.status < 400) {
    Invalidate(request, f.response);
  }
  Outcome out{std::move(f.response), status, std::nullopt, label};
  out.forward = Forward::kBypass;
  out.forward_status = out.response.status;
  if (status == CacheStatus::kBypass) out.detail = "store-unavailable";
  return out;
}

// A fill's steps, in order: LockOrCollapse, AskOrigin, FreshenFrom304 (a 304
// to the fill's validators), then StaleIfError (the origin failed and the
// stale entry may answer) or StoreAndAnswer. The lock, when taken, is
// released on the way out, after the store.
Outcome ResponseCache::Fill(const std::string& key, const Route* route, const Request& request,
                            const Previous& previous, const std::string& label, std::shared_ptr<FillLock> taken) {
  bool store_up = true;
  std::shared_ptr<FillLock> lock = std::move(taken);
  if (lock == nullptr || !lock->held()) {
    lock = NewLock(key);
    if (std::optional<Outcome> theirs = LockOrCollapse(key, request, previous, label, lock.get(), &store_up)) {
      return std::move(*theirs);
    }
  }
  const Record* stale = previous.record.get();
  const Record* validated = Revalidatable(stale);
  OriginAnswer answer = AskOrigin(route, request, validated);
  if (answer.status == 304 && validated != nullptr) FreshenFrom304(*validated, &answer);
  if (StaleAnswersFailure(answer.fetched.failed, stale, answer.response_ms)) {
    return StaleIfError(request, *stale, answer.status, label);
  }
  return StoreAndAnswer(key, route, request, previous, std::move(answer), store_up, lock.get(), label);
}

std::optional<Outcome> ResponseCache::LockOrCollapse(const std::string& key, const Request& request,
                                                     const Previous& previous, const std::string& label,
                                                     FillLock* lock, bool* store_up) {
  // Another node holds the lock: wait for its record, or for the lock to be
  // released or to expire (a dead holder), then take it. Each attempt takes
  // the lock and reads the entry in one round trip; the read runs after the
  // take, so it also sees a record the previous holder stored between our
  // lookup and our lock.
  const auto deadline = clock_->SteadyNow() + options_.lock_ttl + options_.lock_poll;
  for (;;) {
    std::vector<StoreOp> ops;
    ops.push_back(lock->TakeOp(options_.lock_ttl));
    ops.push_back(StoreOp::Get(key));
    ops.push_back(StoreOp::Get(kPurgeSeqKey));  // before the origin is asked (see FillWrite)
    const Status s = RunGuarded(&ops);
    lock->Taken(ops[0], s);
    lock->set_purge_seq(PurgeSeqOf(ops[2].status, ops[2].result));
    if (!s.ok() && !lock->held()) {
      *store_up = false;
      return std::nullopt;
    }
    Lookup url = Decoded(key, ops[1].status, ops[1].result, /*count_corrupt=*/false);
    if (std::shared_ptr<const Record> theirs = FreshElsewhere(std::move(url), key, request, previous, store_up)) {
      lock->Release();  // when we took it after all
      return Collapsed(request, *theirs, label);
    }
    if (lock->held() || !*store_up) return std::nullopt;
    // The holder may be this node's own lock of unknown fate: let it go and
    // try again at once rather than wait out its expiry.
    if (!orphans_.empty()) {
      const std::string lock_key = LockKey(key);
      if (ReleaseOrphans(&lock_key) > 0) continue;
    }
    if (clock_->SteadyNow() >= deadline) {
      log::Warn("cache", "fill lock wait timed out, fetching without it").kv("key", key);
      return std::nullopt;
    }
    std::this_thread::sleep_for(options_.lock_poll);
  }
}

std::shared_ptr<const Record> ResponseCache::FreshElsewhere(Lookup url, const std::string& key, const Request& request,
                                                            const Previous& previous, bool* store_up) {
  Lookup l = ResolveFrom(std::move(url), key, request, /*count_corrupt=*/false);
  if (l.kind == Lookup::Kind::kUnavailable) *store_up = false;
  const bool theirs = l.kind == Lookup::Kind::kFound &&
                      l.record->At(clock_->UnixMillis()) == Record::Freshness::kFresh &&
                      (previous.record == nullptr || l.record->stored_at_ms > previous.record->stored_at_ms);
  return theirs ? std::move(l.record) : nullptr;
}

Outcome ResponseCache::Collapsed(const Request& request, const Record& record, const std::string& label) {
  metrics_->coalesced_remote.Increment();
  Outcome out = FromRecord(request, record, CacheStatus::kMiss, label);
  out.response = record.response;  // the waiters' own conditionals are applied by each
  out.collapsed = true;
  return out;
}

ResponseCache::OriginAnswer ResponseCache::AskOrigin(const Route* route, const Request& request,
                                                     const Record* validated) {
  OriginAnswer answer;
  const Request origin_request = OriginRequestFor(request, validated != nullptr ? &validated->response : nullptr);
  answer.request_ms = clock_->UnixMillis();
  answer.fetched = Fetch(route, origin_request);
  answer.response_ms = clock_->UnixMillis();
  Response& response = answer.fetched.response;
  if (!HasHeader(response.headers, "Date")) {
    response.headers.emplace_back("Date", FormatHttpDate(answer.response_ms / 1000));
  }
  answer.status = response.status;
  return answer;
}

void ResponseCache::FreshenFrom304(const Record& validated, OriginAnswer* answer) {
  Response merged = validated.response;
  UpdateFrom304(&merged, answer->fetched.response);
  answer->fetched.response = std::move(merged);
  answer->freshened = true;
}

Outcome ResponseCache::StaleIfError(const Request& request, const Record& stale, int origin_status,
                                    const std::string& label) {
  metrics_->stale_if_error.Increment();
  Outcome out = FromRecord(request, stale, CacheStatus::kStale, label);
  out.response = stale.response;
  out.detail = "stale-if-error";
  out.forward = Forward::kStale;
  out.forward_status = origin_status;
  return out;
}

Outcome ResponseCache::StoreAndAnswer(const std::string& key, const Route* route, const Request& request,
                                      const Previous& previous, OriginAnswer answer, bool store_up,
                                      FillLock* lock, const std::string& label) {
  Response& response = answer.fetched.response;
  Outcome out;
  out.route = label;
  out.forward = previous.record != nullptr ? Forward::kStale
                : previous.vary_miss      ? Forward::kVaryMiss
                                          : Forward::kUriMiss;
  out.forward_status = answer.status;
  // Freshened: the stored response's variant, whatever the 304 said.
  out.variant =
      answer.freshened ? previous.record->variant : SelectingFields(ParseVary(response.headers), request.headers);
  out.cache = store_up ? CacheStatus::kMiss : CacheStatus::kBypass;
  out.shareable = Shareable(response);
  const CachePolicy policy = route != nullptr ? route->policy : CachePolicy{};
  if (store_up) {  // a 5xx too, when the origin gave it explicit freshness (Assess)
    out.stored =
        StoreResponse(key, policy, request, response, answer.request_ms, answer.response_ms, previous.generation, lock);
  }
  if (HasHeader(response.headers, "Age") || answer.status == 304) {
    FreshnessOptions fo;
    out.age_seconds = Assess(response, answer.request_ms, answer.response_ms, fo).initial_age_ms / 1000;
  }
  out.response = std::move(response);
  return out;
}

ResponseCache::Fetched ResponseCache::Fetch(const Route* route, const Request& request) {
  Fetched f;
  metrics_->origin_requests.Increment();
  const auto start = std::chrono::steady_clock::now();
  if (route != nullptr) {
    try {
      f.response = route->handler(request, std::string_view(request.path).substr(route->prefix.size()));
    } catch (const std::exception& e) {
      log::Error("cache", "route handler threw").kv("route", route->label).kv("err", e.what());
      f.response = ErrorResponse(500, "internal error");
    }
  } else if (Status s = origin_->Fetch(request, &f.response); !s.ok()) {
    log::Warn("origin", "fetch failed").kv("path", request.path).kv("err", s.ToString());
    const bool timeout = s.code() == ErrorCode::kTimeout;
    f.response = ErrorResponse(timeout ? 504 : 502, timeout ? "origin timeout" : "origin unavailable");
  }
  f.failed = f.response.status >= 500;
  if (f.failed) metrics_->origin_errors.Increment();
  metrics_->origin_duration.Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return f;
}

}  // namespace webtier::cache
