// Storability, freshness lifetime and age of a response (RFC 9111 3, 4.2).
#include "webtier/cache/message.h"
#include "webtier/cache/freshness.h"

#include <algorithm>

#include "webtier/cache/http_date.h"

namespace webtier::cache {
namespace {

// The Age value: the first line's first member, ignored unless delta-seconds.
std::optional<int64_t> AgeValue(const Headers& headers) {
  if (!HasHeader(headers, "Age")) return std::nullopt;
  std::string_view v = FindHeader(headers, "Age");
  return ParseDeltaSeconds(TrimOws(v.substr(0, v.find(','))));
}

std::optional<int64_t> DateField(const Headers& headers, std::string_view name, int64_t now_s) {
  if (!HasHeader(headers, name)) return std::nullopt;
  return ParseHttpDate(TrimOws(FindHeader(headers, name)), now_s);
}

}  // namespace

std::string JoinedField(const Headers& headers, std::string_view name) {
  std::string out;
  for (const auto& [n, v] : headers) {
    if (!EqualsIgnoreCase(n, name)) continue;
    if (!out.empty()) out += ", ";
    out += v;
  }
  return out;
}

CacheControl EffectiveCacheControl(const Headers& headers, bool* targeted) {
  if (targeted != nullptr) *targeted = false;
  if (HasHeader(headers, "CDN-Cache-Control")) {
    if (auto cdn = ParseCdnCacheControl(JoinedField(headers, "CDN-Cache-Control"))) {
      if (targeted != nullptr) *targeted = true;
      return *cdn;
    }
  }
  return ParseCacheControl(JoinedField(headers, "Cache-Control"));
}

bool HeuristicallyCacheable(int status) {
  switch (status) {
    case 200: case 203: case 204: case 300: case 301: case 308: case 404: case 405: case 410: case 414: case 501:
      return true;
    default:
      return false;
  }
}

bool HasValidator(const Response& response) {
  return HasHeader(response.headers, "ETag") || HasHeader(response.headers, "Last-Modified");
}

Freshness Assess(const Response& response, int64_t request_ms, int64_t response_ms, const FreshnessOptions& options) {
  Freshness f;
  const Headers& h = response.headers;
  bool targeted = false;
  const CacheControl cc = EffectiveCacheControl(h, &targeted);
  const int64_t now_s = response_ms / 1000;
  const std::optional<int64_t> date_s = DateField(h, "Date", now_s);

  // Age (4.2.3). Date has whole seconds: so does the apparent age, or a Date
  // stamped on receipt would make every response up to 1 s old.
  const int64_t date_ms = date_s.has_value() ? *date_s * 1000 : response_ms;
  const int64_t apparent = std::max<int64_t>(0, (response_ms / 1000) * 1000 - date_ms);
  const int64_t corrected_age = AgeValue(h).value_or(0) * 1000 + std::max<int64_t>(0, response_ms - request_ms);
  f.initial_age_ms = std::max(apparent, corrected_age);

  // Lifetime (4.2.1), first match wins.
  std::optional<int64_t> lifetime_s;
  if (options.policy_ttl_s.has_value()) {
    lifetime_s = options.policy_ttl_s;
  } else if (cc.s_maxage.has_value()) {
    lifetime_s = cc.s_maxage;
  } else if (cc.max_age.has_value()) {
    lifetime_s = cc.max_age;
  } else if (!targeted && HasHeader(h, "Expires")) {
    // An invalid Expires (or several of them) means "already expired".
    const bool several = std::count_if(h.begin(), h.end(), [](const auto& kv) { return EqualsIgnoreCase(kv.first, "Expires"); }) > 1;
    std::optional<int64_t> expires = several ? std::nullopt : DateField(h, "Expires", now_s);
    lifetime_s = expires.has_value() ? std::max<int64_t>(0, *expires - date_ms / 1000) : 0;
  }
  const bool explicit_freshness = lifetime_s.has_value();
  if (!explicit_freshness && (HeuristicallyCacheable(response.status) || cc.is_public) && options.heuristic_cap_s > 0) {
    // 4.2.2: 10% of the time since Last-Modified, and never more than --cache-ttl.
    if (auto lm = DateField(h, "Last-Modified", now_s); lm.has_value() && *lm * 1000 <= date_ms) {
      lifetime_s = std::min(options.heuristic_cap_s, (date_ms / 1000 - *lm) / 10);
      f.heuristic = true;
    }
  }
  f.lifetime_ms = lifetime_s.value_or(0) * 1000;
  f.always_revalidate = cc.no_cache;
  f.no_stale = cc.must_revalidate || cc.proxy_revalidate || cc.s_maxage.has_value() || cc.no_cache;
  f.swr_ms = f.no_stale ? 0 : cc.stale_while_revalidate.value_or(0) * 1000;
  f.sie_ms = f.no_stale ? 0 : cc.stale_if_error.value_or(options.stale_if_error_s) * 1000;
  f.drop_fields = cc.no_cache_fields;
  f.drop_fields.insert(f.drop_fields.end(), cc.private_fields.begin(), cc.private_fields.end());

  // Storable (3): not for no-store or private; a final status this cache can
  // reuse whole (not 206, 304, 1xx); explicit freshness, public, a heuristic
  // status, or validators to revalidate a stored no-cache / max-age=0 answer.
  const bool status_ok = response.status >= 200 && response.status != 206 && response.status != 304;
  const bool reusable = (explicit_freshness && (f.lifetime_ms > 0 || HasValidator(response))) ||
                        (f.heuristic && f.lifetime_ms > 0) || (cc.no_cache && HasValidator(response));
  f.storable = status_ok && !cc.no_store && !cc.is_private && reusable &&
               (explicit_freshness || cc.is_public || HeuristicallyCacheable(response.status));
  return f;
}

}  // namespace webtier::cache
