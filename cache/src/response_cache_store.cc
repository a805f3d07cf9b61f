// ResponseCache, what writes to the store: storing a response (with its
// variant and tags), purges by URL and tag, invalidation after unsafe methods;
// and the Cache-Status field.
#include <cstdio>
#include <unordered_set>

#include "webtier/cache/cache_key.h"
#include "webtier/cache/freshness.h"
#include "webtier/cache/response_cache.h"
#include "webtier/cache/vary.h"
#include "webtier/common/http_syntax.h"
#include "webtier/common/log.h"

namespace webtier::cache {
namespace {

// Fields that describe one delivery, not the stored response. `dropped`
// (lower case) holds the fields private="..." / no-cache="..." name: a set,
// so many of them cost no more than their number.
bool KeepHeader(std::string_view name, const std::unordered_set<std::string>& dropped) {
  if (IsHopByHopOrLength(name) || EqualsIgnoreCase(name, "Set-Cookie") || EqualsIgnoreCase(name, "Age") ||
      EqualsIgnoreCase(name, "X-Cache") || EqualsIgnoreCase(name, "X-Served-By") ||
      EqualsIgnoreCase(name, "Cache-Status")) {
    return false;
  }
  return dropped.empty() || dropped.count(http_syntax::LowerCopy(name)) == 0;
}

// The path[?query] a Location / Content-Location value names on this origin,
// or "" for another origin. Relative references resolve against `base_path`.
std::string SameOriginTarget(std::string_view target, std::string_view base_path, std::string_view host) {
  if (target.empty()) return "";
  size_t scheme = target.find("://");
  if (scheme != std::string_view::npos) {
    std::string_view rest = target.substr(scheme + 3);
    size_t slash = rest.find('/');
    if (host.empty() || !EqualsIgnoreCase(rest.substr(0, slash), host)) return "";
    return slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  }
  if (target.front() == '/') return target.size() > 1 && target[1] == '/' ? "" : std::string(target);
  size_t dir = base_path.rfind('/');
  return std::string(base_path.substr(0, dir == std::string_view::npos ? 0 : dir + 1)) + std::string(target);
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

std::string CacheStatusField(const Outcome& o) {
  std::string out = "webtier";
  if (o.cache == CacheStatus::kHit || o.cache == CacheStatus::kStale) out += "; hit";
  switch (o.forward) {
    case Forward::kUriMiss: out += "; fwd=uri-miss"; break;
    case Forward::kVaryMiss: out += "; fwd=vary-miss"; break;
    case Forward::kStale: out += "; fwd=stale"; break;
    case Forward::kBypass: out += "; fwd=bypass"; break;
    case Forward::kNone: break;
  }
  if (o.forward_status != 0) out += "; fwd-status=" + std::to_string(o.forward_status);
  if (o.stored) out += "; stored";
  if (o.collapsed) out += "; collapsed";
  if (o.ttl_s.has_value()) out += "; ttl=" + std::to_string(*o.ttl_s);
  if (!o.detail.empty()) out += "; detail=" + o.detail;
  return out;
}

bool ResponseCache::StoreResponse(const std::string& key, const CachePolicy& policy, const Request& request,
                          const Response& response, int64_t request_ms, int64_t response_ms, uint64_t generation,
                          FillLock* lock) {
  FreshnessOptions fo;
  if (policy.ttl.has_value()) fo.policy_ttl_s = policy.ttl->count();
  fo.heuristic_cap_s = options_.default_ttl.count();
  fo.stale_if_error_s = options_.stale_if_error.count();
  const Freshness fr = Assess(response, request_ms, response_ms, fo);
  if (!fr.storable || HasHeader(response.headers, "Set-Cookie") || response.body.size() > options_.max_body_bytes) {
    return false;
  }
  const Vary vary = ParseVary(response.headers);
  if (vary.star) return false;  // matches no later request

  Record record;
  record.stored_at_ms = response_ms;
  record.age_ms = fr.initial_age_ms;
  int64_t ttl_ms = fr.lifetime_ms;
  if (options_.ttl_jitter > 0 && ttl_ms > 0) {
    MutexLock lock(&rng_mu_);
    std::uniform_real_distribution<double> fraction(0.0, options_.ttl_jitter);
    ttl_ms -= static_cast<int64_t>(static_cast<double>(ttl_ms) * fraction(rng_));
  }
  record.ttl_ms = ttl_ms;
  record.swr_ms = fr.swr_ms;
  record.sie_ms = fr.sie_ms;
  record.keep_ms = HasValidator(response) ? options_.keep.count() * 1000 : 0;
  record.flags = static_cast<uint8_t>((fr.no_stale ? Record::kNoStale : 0) |
                                      (fr.always_revalidate ? Record::kAlwaysRevalidate : 0));
  record.response.status = response.status;
  std::unordered_set<std::string> dropped;
  for (const auto& d : fr.drop_fields) dropped.insert(http_syntax::LowerCopy(d));
  for (const auto& [name, value] : response.headers) {
    if (KeepHeader(name, dropped)) record.response.headers.emplace_back(name, value);
  }
  record.response.body = response.body;
  const auto retain = std::chrono::milliseconds(record.RetainMs());
  if (!vary.empty()) {
    record.variant = SelectingFields(vary, request.headers);
    record.generation = generation != 0 ? generation : NewGeneration();
  }
  std::string encoded = EncodeRecord(record, options_.record_version);
  // One command: the entry (and its variant), the URL's index (so a purge by
  // path reaches this site's entry) and one index per Surrogate-Key tag
  // (space-separated), written at once unless a purge of the URL or of a tag
  // came after this fill began; and the release of the fill's lock.
  FillWrite write;
  write.entries.push_back(key);
  if (!vary.empty()) write.entries.push_back(VariantKey(key, record.generation, record.variant));
  write.value = std::move(encoded);
  write.member = key;
  write.ttl = retain;
  write.indexes.push_back(UrlIndexKey(request.path, request.query));
  std::string_view tags = FindHeader(response.headers, "Surrogate-Key");
  while (!tags.empty()) {
    size_t sp = tags.find(' ');
    std::string_view tag = tags.substr(0, sp);
    if (!tag.empty()) write.indexes.push_back(TagKey(tag));
    if (sp == std::string_view::npos) break;
    tags.remove_prefix(sp + 1);
  }
  for (const auto& index : write.indexes) write.marks.push_back(PurgeMarkKey(index));
  write.since = lock != nullptr ? lock->purge_seq() : 0;  // unknown: any live mark fences it
  const bool unlock = lock != nullptr && lock->held();
  if (unlock) {
    StoreOp release = lock->ReleaseOp();
    write.lock_key = std::move(release.key);
    write.token = std::move(release.value);
  }
  std::vector<StoreOp> ops;
  ops.push_back(StoreOp::PutFill(std::move(write)));
  RunGuarded(&ops).IgnoreError();  // counted there; what matters here is whether the entries went in
  if (unlock) lock->Released(ops.front());
  const std::vector<std::string>& keys = ops.front().fill.entries;
  if (!ops.front().status.ok()) return false;
  if (!ops.front().written) {
    metrics_->fenced_fills.Increment();
    log::Debug("cache", "fill not stored: purged while it was fetched").kv("key", key);
    return false;
  }
  metrics_->stores.Increment();
  if (record.At(response_ms) == Record::Freshness::kFresh) {
    auto shared = std::make_shared<const Record>(std::move(record));
    for (const auto& k : keys) KeepHot(k, shared);
  }
  return true;
}

Status ResponseCache::FenceFills(const std::vector<std::string>& indexes) {
  std::vector<std::string> marks;
  marks.reserve(indexes.size());
  for (const auto& index : indexes) marks.push_back(PurgeMarkKey(index));
  // A fill lasts less than its lock's expiry; twice that is to spare.
  return Guarded([&] { return store_->MarkPurged(marks, 2 * options_.lock_ttl); });
}

Status ResponseCache::Drop(const std::string& key) {
  if (hot_ != nullptr) hot_->EraseWithVariants(key);
  Status s = Guarded([&] { return store_->Delete(key); });
  if (!s.ok()) return s;
  // Other nodes drop their hot copy when they hear of it; if the message is
  // lost, their copy still ends within the hot window.
  Guarded([&] { return store_->Publish(kPurgeChannel, key); }).IgnoreError();
  return s;
}

std::string ResponseCache::SiteFor(const Request& request) const {
  return SiteOf(request.scheme, options_.key_includes_host ? std::string_view(request.host) : std::string_view());
}

void ResponseCache::KeysOfEveryRelease(std::string_view path, std::string_view query, std::string_view site,
                                       std::vector<std::string>* keys) const {
  // During a rolling upgrade the release before and after this one keep
  // their entries under their own format version; deleting a key needs no
  // knowledge of its format, so a purge or invalidation reaches all three.
  const int v = options_.record_version;
  for (int version = v - 1; version <= v + 1; ++version) {
    if (version >= 1 && version <= 255) keys->push_back(CacheKey(path, query, site, static_cast<uint8_t>(version)));
  }
}

void ResponseCache::Invalidate(const Request& request, const Response& response) {
  const std::string site = SiteFor(request);
  std::vector<std::string> keys;
  std::vector<std::string> indexes = {UrlIndexKey(request.path, request.query)};
  KeysOfEveryRelease(request.path, request.query, site, &keys);
  for (std::string_view field : {"Location", "Content-Location"}) {
    std::string target = SameOriginTarget(FindHeader(response.headers, field), request.path, request.host);
    if (target.empty()) continue;
    size_t q = target.find('?');
    const std::string_view path = std::string_view(target).substr(0, q);
    const std::string_view query = q == std::string::npos ? std::string_view() : std::string_view(target).substr(q + 1);
    KeysOfEveryRelease(path, query, site, &keys);
    indexes.push_back(UrlIndexKey(path, query));
  }
  // Each failure is counted by Guarded; an invalidation is best effort
  // (RFC 9111 4.4), the entries still end with their freshness.
  FenceFills(indexes).IgnoreError();
  for (const auto& key : keys) Drop(key).IgnoreError();
}

Status ResponseCache::Purge(std::string_view path_and_query) {
  if (store_ == nullptr) return Status(ErrorCode::kUnavailable, "the cache is off (no --redis)");
  size_t q = path_and_query.find('?');
  std::string_view path = path_and_query.substr(0, q);
  std::string_view query = q == std::string_view::npos ? std::string_view() : path_and_query.substr(q + 1);
  // The keys of releases that keyed on neither scheme nor Host (a rolling
  // upgrade from one), then every site this URL was stored for.
  std::vector<std::string> keys;
  KeysOfEveryRelease(path, query, "", &keys);
  std::vector<std::string> indexed;
  const std::string index = UrlIndexKey(path, query);
  if (Status s = FenceFills({index}); !s.ok()) return s;
  if (Status s = Guarded([&] { return store_->TakeSet(index, &indexed); }); !s.ok()) return s;
  keys.insert(keys.end(), indexed.begin(), indexed.end());
  for (const auto& key : keys) {
    if (Status s = Drop(key); !s.ok()) return s;
  }
  metrics_->purges.Increment();
  return Status::Ok();
}

Status ResponseCache::PurgeTag(std::string_view tag, size_t* purged) {
  if (store_ == nullptr) return Status(ErrorCode::kUnavailable, "the cache is off (no --redis)");
  std::vector<std::string> keys;
  const std::string index = TagKey(tag);
  if (Status s = FenceFills({index}); !s.ok()) return s;
  if (Status s = Guarded([&] { return store_->TakeSet(index, &keys); }); !s.ok()) return s;
  for (const auto& key : keys) {
    if (Status s = Drop(key); !s.ok()) return s;
  }
  if (purged != nullptr) *purged = keys.size();
  metrics_->purges.Increment();
  return Status::Ok();
}

uint64_t ResponseCache::NewGeneration() {
  MutexLock lock(&rng_mu_);
  uint64_t g = 0;
  while (g == 0) g = rng_();
  return g;
}

std::string ResponseCache::NewToken() {
  uint64_t a, b;
  {
    MutexLock lock(&rng_mu_);
    a = rng_();
    b = rng_();
  }
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%016llx%016llx", static_cast<unsigned long long>(a),
                static_cast<unsigned long long>(b));
  return options_.node_id + ":" + buf;
}

}  // namespace webtier::cache
