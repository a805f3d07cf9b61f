// Cache key construction.
#include "webtier/cache/cache_key.h"

#include <algorithm>
#include <vector>

namespace webtier::cache {

std::string NormalizeQuery(std::string_view query) {
  std::vector<std::string_view> params;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view p = query.substr(0, amp);
    if (!p.empty()) params.push_back(p);
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  std::stable_sort(params.begin(), params.end());
  std::string out;
  for (auto p : params) {
    if (!out.empty()) out += '&';
    out += p;
  }
  return out;
}

namespace {
std::string PathAndQuery(std::string_view path, std::string_view query) {
  std::string out(path);
  std::string q = NormalizeQuery(query);
  if (!q.empty()) {
    out += '?';
    out += q;
  }
  return out;
}
}  // namespace

std::string SiteOf(std::string_view scheme, std::string_view host) {
  std::string site(scheme);
  site += "://";
  site += host;
  return site;
}

std::string CacheKey(std::string_view path, std::string_view query, std::string_view site, uint8_t version) {
  std::string key = "webtier:v" + std::to_string(version) + ":";
  key += site;
  key += PathAndQuery(path, query);
  return key;
}

std::string UrlIndexKey(std::string_view path, std::string_view query) {
  return "webtier:url:" + PathAndQuery(path, query);
}

std::string TagKey(std::string_view tag) { return "webtier:tag:" + std::string(tag); }

std::string LockKey(std::string_view cache_key) { return "webtier:lock:" + std::string(cache_key); }

std::string PurgeMarkKey(std::string_view index_key) {
  constexpr std::string_view kNamespace = "webtier:";
  if (index_key.substr(0, kNamespace.size()) == kNamespace) index_key.remove_prefix(kNamespace.size());
  return "webtier:purged:" + std::string(index_key);
}

}  // namespace webtier::cache
