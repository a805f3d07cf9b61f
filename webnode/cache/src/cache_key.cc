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

std::string CacheKey(std::string_view path, std::string_view query, std::string_view host, uint8_t version) {
  std::string key = "webtier:v" + std::to_string(version) + ":";
  if (!host.empty()) {
    key += host;
    key += '|';
  }
  key += path;
  std::string q = NormalizeQuery(query);
  if (!q.empty()) {
    key += '?';
    key += q;
  }
  return key;
}

std::string TagKey(std::string_view tag) { return "webtier:tag:" + std::string(tag); }

std::string LockKey(std::string_view cache_key) { return "webtier:lock:" + std::string(cache_key); }

}  // namespace webtier::cache
