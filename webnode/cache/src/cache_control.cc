// Cache-Control directive parsing.
#include "webtier/cache/cache_control.h"

#include <charconv>
#include <string>

#include "webtier/cache/message.h"

namespace webtier::cache {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::optional<int64_t> Seconds(std::string_view v) {
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
  int64_t out = 0;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || ptr != v.data() + v.size() || out < 0) return std::nullopt;
  return out;
}

}  // namespace

CacheControl ParseCacheControl(std::string_view value) {
  CacheControl cc;
  while (!value.empty()) {
    size_t comma = value.find(',');
    std::string_view item = Trim(value.substr(0, comma));
    value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
    if (item.empty()) continue;
    size_t eq = item.find('=');
    std::string_view name = Trim(item.substr(0, eq));
    std::string_view arg = eq == std::string_view::npos ? std::string_view() : Trim(item.substr(eq + 1));
    if (EqualsIgnoreCase(name, "no-store")) {
      cc.no_store = true;
    } else if (EqualsIgnoreCase(name, "no-cache")) {
      cc.no_cache = true;
    } else if (EqualsIgnoreCase(name, "private")) {
      cc.is_private = true;
    } else if (EqualsIgnoreCase(name, "public")) {
      cc.is_public = true;
    } else if (EqualsIgnoreCase(name, "max-age")) {
      if (auto s = Seconds(arg)) cc.max_age = s;
    } else if (EqualsIgnoreCase(name, "s-maxage")) {
      if (auto s = Seconds(arg)) cc.s_maxage = s;
    } else if (EqualsIgnoreCase(name, "stale-while-revalidate")) {
      if (auto s = Seconds(arg)) cc.stale_while_revalidate = s;
    } else if (EqualsIgnoreCase(name, "stale-if-error")) {
      if (auto s = Seconds(arg)) cc.stale_if_error = s;
    }
  }
  return cc;
}

}  // namespace webtier::cache
