// ResponseCache: lookup, coalesced fill, stale serving, breaker bypass.
#include "webtier/cache/response_cache.h"

#include <cstdio>
#include <exception>
#include <thread>

#include "webtier/cache/cache_control.h"
#include "webtier/cache/cache_key.h"
#include "webtier/common/log.h"

namespace webtier::cache {
namespace {

bool HasCredentials(const Request& r) { return HasHeader(r.headers, "Authorization") || HasHeader(r.headers, "Cookie"); }

// Statuses a shared cache may store when the response allows it (RFC 9110
// 15.1 "heuristically cacheable"), minus 5xx: an error is never stored.
bool CacheableStatus(int status) {
  switch (status) {
    case 200: case 203: case 204: case 300: case 301: case 308: case 404: case 405: case 410: case 414:
      return true;
    default:
      return false;
  }
}

// Headers that describe one delivery, not the stored representation.
bool KeepHeader(std::string_view name) {
  return !IsHopByHop(name) && !EqualsIgnoreCase(name, "Set-Cookie") && !EqualsIgnoreCase(name, "Age") &&
         !EqualsIgnoreCase(name, "Date") && !EqualsIgnoreCase(name, "X-Cache") && !EqualsIgnoreCase(name, "X-Served-By");
}

// Every Cache-Control header line joined, as RFC 9110 5.3 allows.
std::string AllCacheControl(const Headers& headers) {
  std::string out;
  for (const auto& [n, v] : headers) {
    if (!EqualsIgnoreCase(n, "Cache-Control")) continue;
    if (!out.empty()) out += ',';
    out += v;
  }
  return out;
}

// Whether a response meant for one client may be given to another.
bool Shareable(const Response& response) {
  if (HasHeader(response.headers, "Set-Cookie")) return false;
  const CacheControl cc = ParseCacheControl(AllCacheControl(response.headers));
  return !cc.is_private && !cc.no_store;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

Response Overloaded() {
  Response r = ErrorResponse(503, "overloaded");
  r.headers.emplace_back("Retry-After", "1");
  return r;
}

}  // namespace

std::string_view CacheStatusName(CacheStatus status) {
  switch (status) {
    case CacheStatus::kHit: return "HIT";
    case CacheStatus::kMiss: return "MISS";
    case CacheStatus::kStale: return "STALE";
    case CacheStatus::kBypass: return "BYPASS";
    case CacheStatus::kNone: break;
  }
  return "";
}

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

void ResponseCache::KeepHot(const std::string& key, const Record& record) {
  if (hot_ != nullptr) hot_->Put(key, std::make_shared<const Record>(record));
}

Status ResponseCache::Guarded(const std::function<Status()>& op) {
  if (!breaker_->Allow()) return Status(ErrorCode::kUnavailable, "redis circuit open");
  Status s = op();
  if (s.ok() || s.code() == ErrorCode::kNotFound) {
    breaker_->RecordSuccess();
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

ResponseCache::Lookup ResponseCache::Find(const std::string& key, bool count_corrupt) {
  Lookup out;
  std::string bytes;
  Status s = Guarded([&] { return store_->Get(key, &bytes); });
  if (s.code() == ErrorCode::kNotFound) {
    out.kind = Lookup::Kind::kMissing;
  } else if (!s.ok()) {
    out.kind = Lookup::Kind::kUnavailable;
  } else if (Status d = DecodeRecord(bytes, &out.record); !d.ok()) {
    if (count_corrupt) {
      metrics_->corrupt_records.Increment();
      log::Warn("cache", "undecodable record, treated as a miss").kv("key", key).kv("err", d.message());
    }
    out.kind = Lookup::Kind::kCorrupt;
  } else {
    out.kind = Lookup::Kind::kFound;
  }
  return out;
}

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

  std::string key = CacheKey(request.path, request.query, options_.key_includes_host ? request.host : "");
  request.method = "GET";  // HEAD is answered from the GET entry (the Reply drops the body)
  const int64_t now = clock_->UnixMillis();
  if (hot_ != nullptr) {
    if (std::shared_ptr<const Record> hot = hot_->Get(key)) {
      metrics_->hit.Increment();
      metrics_->hot_hits.Increment();
      done(Outcome{hot->response, CacheStatus::kHit, hot->AgeSeconds(now), label});
      return;
    }
  }
  Lookup found = Find(key);
  std::optional<Record> stale;
  switch (found.kind) {
    case Lookup::Kind::kUnavailable:
      metrics_->bypass.Increment();
      FetchOnWorker(route, std::move(request), std::move(done), CacheStatus::kBypass, label);
      return;
    case Lookup::Kind::kFound:
      switch (found.record.At(now)) {
        case Record::Freshness::kFresh:
          metrics_->hit.Increment();
          KeepHot(key, found.record);
          done(Outcome{std::move(found.record.response), CacheStatus::kHit, found.record.AgeSeconds(now), label});
          return;
        case Record::Freshness::kStaleRevalidate: {
          metrics_->stale.Increment();
          Outcome out{found.record.response, CacheStatus::kStale, found.record.AgeSeconds(now), label};
          StartFill(key, route, std::move(request), std::move(found.record), nullptr, label);
          done(std::move(out));
          return;
        }
        case Record::Freshness::kStaleIfError:
          stale = std::move(found.record);
          break;
        case Record::Freshness::kExpired:
          break;
      }
      break;
    case Lookup::Kind::kMissing:
    case Lookup::Kind::kCorrupt:
      break;
  }
  metrics_->miss.Increment();
  StartFill(key, route, std::move(request), std::move(stale), std::move(done), label);
}

void ResponseCache::StartFill(const std::string& key, const Route* route, Request request,
                              std::optional<Record> stale, Done done, const std::string& label) {
  const bool revalidation = !done;
  // Written before the fill is queued, read when it completes (the pool's lock orders them).
  auto leader = std::make_shared<bool>(false);
  SingleFlight<Outcome>::Callback waiter;
  if (!revalidation) {
    auto own = std::make_shared<Request>(request);  // a follower may have to fetch for itself
    waiter = [this, leader, own, route, label, done = std::move(done)](const Outcome& o) {
      if (*leader || o.shareable) {
        done(o);
      } else {
        FetchOnWorker(route, *own, done, CacheStatus::kMiss, label);
      }
    };
  }
  if (!flights_.Join(key, std::move(waiter))) {
    if (!revalidation) metrics_->coalesced_local.Increment();
    return;
  }
  *leader = true;
  if (revalidation) metrics_->revalidations.Increment();
  const bool queued = workers_->Submit([this, key, route, label, request = std::move(request), stale = std::move(stale)] {
    Outcome out;
    try {
      out = Fill(key, route, request, stale, label);
    } catch (const std::exception& e) {
      log::Error("cache", "fill failed").kv("key", key).kv("err", e.what());
      out = Outcome{ErrorResponse(500, "internal error"), CacheStatus::kNone, std::nullopt, label};
    }
    flights_.Complete(key, out);
  });
  if (!queued) flights_.Complete(key, Outcome{Overloaded(), CacheStatus::kNone, std::nullopt, label});
}

void ResponseCache::FetchOnWorker(const Route* route, Request request, Done done, CacheStatus status,
                                  const std::string& label) {
  auto shared_done = std::make_shared<Done>(std::move(done));
  const bool queued = workers_->Submit([this, route, label, status, request = std::move(request), shared_done] {
    Fetched f = Fetch(route, request);
    (*shared_done)(Outcome{std::move(f.response), status, std::nullopt, label});
  });
  if (!queued) (*shared_done)(Outcome{Overloaded(), CacheStatus::kNone, std::nullopt, label});
}

Outcome ResponseCache::Fill(const std::string& key, const Route* route, const Request& request,
                            const std::optional<Record>& stale, const std::string& label) {
  const std::string lock_key = LockKey(key);
  const std::string token = NewToken();
  bool locked = false;
  bool store_up = true;
  // Another node holds the lock: wait for its record, or for the lock to be
  // released or to expire (a dead holder), then take it.
  const auto deadline = clock_->SteadyNow() + options_.lock_ttl + options_.lock_poll;
  for (;;) {
    if (!Guarded([&] { return store_->TryLock(lock_key, token, options_.lock_ttl, &locked); }).ok()) {
      store_up = false;
      break;
    }
    if (locked) break;
    Lookup l = Find(key, /*count_corrupt=*/false);
    if (l.kind == Lookup::Kind::kUnavailable) {
      store_up = false;
      break;
    }
    const int64_t now = clock_->UnixMillis();
    if (l.kind == Lookup::Kind::kFound && l.record.At(now) == Record::Freshness::kFresh) {
      metrics_->coalesced_remote.Increment();
      return Outcome{std::move(l.record.response), CacheStatus::kMiss, std::nullopt, label};
    }
    if (clock_->SteadyNow() >= deadline) {
      log::Warn("cache", "fill lock wait timed out, fetching without it").kv("key", key);
      break;
    }
    std::this_thread::sleep_for(options_.lock_poll);
  }
  auto unlock = [&] {
    if (locked) Guarded([&] { return store_->Unlock(lock_key, token); });
  };
  if (locked) {
    // The previous holder may have stored it between our lookup and our lock.
    Lookup l = Find(key, /*count_corrupt=*/false);
    const int64_t now = clock_->UnixMillis();
    if (l.kind == Lookup::Kind::kFound && l.record.At(now) == Record::Freshness::kFresh) {
      unlock();
      metrics_->coalesced_remote.Increment();
      return Outcome{std::move(l.record.response), CacheStatus::kMiss, std::nullopt, label};
    }
  }

  Fetched f = Fetch(route, request);
  const int64_t now = clock_->UnixMillis();
  Outcome out;
  out.route = label;
  if (f.failed && stale.has_value() && stale->At(now) != Record::Freshness::kExpired) {
    metrics_->stale_if_error.Increment();
    out.response = stale->response;
    out.cache = CacheStatus::kStale;
    out.age_seconds = stale->AgeSeconds(now);
  } else {
    out.cache = store_up ? CacheStatus::kMiss : CacheStatus::kBypass;
    out.shareable = Shareable(f.response);
    Record record;
    const CachePolicy policy = route != nullptr ? route->policy : CachePolicy{};
    if (store_up && !f.failed && Storable(policy, f.response, &record)) {
      record.stored_at_ms = now;
      if (Guarded([&] {
            return store_->Put(key, EncodeRecord(record), std::chrono::milliseconds(record.RetainMs()));
          }).ok()) {
        metrics_->stores.Increment();
        KeepHot(key, record);
      }
    }
    out.response = std::move(f.response);
  }
  unlock();
  return out;
}

bool ResponseCache::Storable(const CachePolicy& policy, const Response& response, Record* record) {
  if (!CacheableStatus(response.status)) return false;
  if (HasHeader(response.headers, "Set-Cookie")) return false;
  const CacheControl cc = ParseCacheControl(AllCacheControl(response.headers));
  if (cc.no_store || cc.no_cache || cc.is_private) return false;
  std::string_view vary = Trim(FindHeader(response.headers, "Vary"));
  if (!vary.empty() && !EqualsIgnoreCase(vary, "Accept-Encoding")) return false;  // not keyed on request headers
  if (response.body.size() > options_.max_body_bytes) return false;

  int64_t ttl_s = policy.ttl.has_value() ? policy.ttl->count()
                  : cc.s_maxage.has_value() ? *cc.s_maxage
                  : cc.max_age.has_value()  ? *cc.max_age
                                            : options_.default_ttl.count();
  if (ttl_s <= 0) return false;
  int64_t ttl_ms = ttl_s * 1000;
  if (options_.ttl_jitter > 0) {
    std::lock_guard<std::mutex> lock(rng_mu_);
    std::uniform_real_distribution<double> fraction(0.0, options_.ttl_jitter);
    ttl_ms -= static_cast<int64_t>(static_cast<double>(ttl_ms) * fraction(rng_));
  }
  record->ttl_ms = ttl_ms;
  record->swr_ms = cc.stale_while_revalidate.value_or(options_.stale_while_revalidate.count()) * 1000;
  record->sie_ms = cc.stale_if_error.value_or(options_.stale_if_error.count()) * 1000;
  record->response.status = response.status;
  record->response.headers.clear();
  for (const auto& [name, value] : response.headers) {
    if (KeepHeader(name)) record->response.headers.emplace_back(name, value);
  }
  record->response.body = response.body;
  return true;
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

Status ResponseCache::Purge(std::string_view path_and_query, std::string_view host) {
  if (store_ == nullptr) return Status(ErrorCode::kUnavailable, "the cache is off (no --redis)");
  size_t q = path_and_query.find('?');
  std::string_view path = path_and_query.substr(0, q);
  std::string_view query = q == std::string_view::npos ? std::string_view() : path_and_query.substr(q + 1);
  const std::string key = CacheKey(path, query, options_.key_includes_host ? host : std::string_view());
  if (hot_ != nullptr) hot_->Erase(key);
  Status s = Guarded([&] { return store_->Delete(key); });
  if (!s.ok()) return s;
  metrics_->purges.Increment();
  // Other nodes drop their hot copy when they hear of it; if the message is
  // lost, their copy still ends within the hot window.
  Guarded([&] { return store_->Publish(kPurgeChannel, key); });
  return s;
}

std::string ResponseCache::NewToken() {
  uint64_t a, b;
  {
    std::lock_guard<std::mutex> lock(rng_mu_);
    a = rng_();
    b = rng_();
  }
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%016llx%016llx", static_cast<unsigned long long>(a),
                static_cast<unsigned long long>(b));
  return options_.node_id + ":" + buf;
}

}  // namespace webtier::cache
