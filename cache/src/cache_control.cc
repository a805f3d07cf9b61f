// Cache-Control and CDN-Cache-Control directive parsing.
#include "webtier/cache/cache_control.h"

#include <cctype>

#include "webtier/cache/message.h"

namespace webtier::cache {
namespace {

constexpr int64_t kMaxDelta = int64_t{1} << 31;

// Splits on `sep` outside double quotes (a backslash escapes inside them).
std::vector<std::string_view> SplitOutsideQuotes(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  bool quoted = false;
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (quoted && s[i] == '\\') {
      ++i;
    } else if (s[i] == '"') {
      quoted = !quoted;
    } else if (!quoted && s[i] == sep) {
      out.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  out.push_back(s.substr(start));
  return out;
}

std::string_view Unquote(std::string_view v) {
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') return v.substr(1, v.size() - 2);
  return v;
}

std::vector<std::string> FieldNames(std::string_view list) {
  std::vector<std::string> out;
  for (std::string_view name : SplitOutsideQuotes(Unquote(list), ',')) {
    name = TrimOws(name);
    if (!name.empty()) out.emplace_back(name);
  }
  return out;
}

void SetOnce(std::optional<int64_t>* field, std::optional<int64_t> value) {
  if (!field->has_value()) *field = value.value_or(0);
}

// Applies one directive; `arg` is the raw argument (quotes included), `has_arg` whether '=' was there.
void Apply(CacheControl* cc, std::string_view name, std::string_view arg, bool has_arg) {
  if (EqualsIgnoreCase(name, "no-store")) {
    cc->no_store = true;
  } else if (EqualsIgnoreCase(name, "no-cache")) {
    if (has_arg && !Unquote(arg).empty()) {
      for (auto& f : FieldNames(arg)) cc->no_cache_fields.push_back(std::move(f));
    } else {
      cc->no_cache = true;
    }
  } else if (EqualsIgnoreCase(name, "private")) {
    if (has_arg && !Unquote(arg).empty()) {
      for (auto& f : FieldNames(arg)) cc->private_fields.push_back(std::move(f));
    } else {
      cc->is_private = true;
    }
  } else if (EqualsIgnoreCase(name, "public")) {
    cc->is_public = true;
  } else if (EqualsIgnoreCase(name, "must-revalidate")) {
    cc->must_revalidate = true;
  } else if (EqualsIgnoreCase(name, "proxy-revalidate")) {
    cc->proxy_revalidate = true;
  } else if (EqualsIgnoreCase(name, "max-age")) {
    SetOnce(&cc->max_age, ParseDeltaSeconds(Unquote(arg)));
  } else if (EqualsIgnoreCase(name, "s-maxage")) {
    SetOnce(&cc->s_maxage, ParseDeltaSeconds(Unquote(arg)));
  } else if (EqualsIgnoreCase(name, "stale-while-revalidate")) {
    if (auto s = ParseDeltaSeconds(Unquote(arg))) SetOnce(&cc->stale_while_revalidate, s);
  } else if (EqualsIgnoreCase(name, "stale-if-error")) {
    if (auto s = ParseDeltaSeconds(Unquote(arg))) SetOnce(&cc->stale_if_error, s);
  } else if (EqualsIgnoreCase(name, "max-stale")) {
    if (!cc->max_stale.has_value()) cc->max_stale = has_arg ? ParseDeltaSeconds(Unquote(arg)).value_or(0) : kMaxDelta;
  } else if (EqualsIgnoreCase(name, "min-fresh")) {
    SetOnce(&cc->min_fresh, ParseDeltaSeconds(Unquote(arg)));
  } else if (EqualsIgnoreCase(name, "only-if-cached")) {
    cc->only_if_cached = true;
  }
}

bool IsSfKey(std::string_view key) {
  if (key.empty() || !(std::islower(static_cast<unsigned char>(key[0])) || key[0] == '*')) return false;
  for (char c : key) {
    if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '_' ||
          c == '-' || c == '.' || c == '*')) {
      return false;
    }
  }
  return true;
}

enum class SfType { kInvalid, kInteger, kDecimal, kString, kToken, kBoolean };

// The type of a Structured Fields bare item (RFC 8941 3.3), parameters stripped.
SfType BareItemType(std::string_view item) {
  item = TrimOws(SplitOutsideQuotes(item, ';').front());
  if (item.empty()) return SfType::kInvalid;
  if (item.front() == '"') return item.size() >= 2 && item.back() == '"' ? SfType::kString : SfType::kInvalid;
  if (item == "?0" || item == "?1") return SfType::kBoolean;
  if (item.front() == '-' || std::isdigit(static_cast<unsigned char>(item.front()))) {
    std::string_view digits = item.front() == '-' ? item.substr(1) : item;
    size_t dots = 0;
    for (char c : digits) {
      if (c == '.') ++dots;
      else if (!std::isdigit(static_cast<unsigned char>(c))) return SfType::kInvalid;
    }
    if (digits.empty() || dots > 1) return SfType::kInvalid;
    return dots == 0 ? SfType::kInteger : SfType::kDecimal;
  }
  if (std::isalpha(static_cast<unsigned char>(item.front())) || item.front() == '*') {
    for (char c : item) {
      if (!(std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$%&'*+-.^_`|~:/").find(c) !=
                                                              std::string_view::npos)) {
        return SfType::kInvalid;
      }
    }
    return SfType::kToken;
  }
  return SfType::kInvalid;
}

}  // namespace

std::optional<int64_t> ParseDeltaSeconds(std::string_view v) {
  if (v.empty()) return std::nullopt;
  int64_t out = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return std::nullopt;
    out = out * 10 + (c - '0');
    if (out > kMaxDelta) out = kMaxDelta;
  }
  return out;
}

CacheControl ParseCacheControl(std::string_view value) {
  CacheControl cc;
  for (std::string_view item : SplitOutsideQuotes(value, ',')) {
    item = TrimOws(item);
    if (item.empty()) continue;
    size_t eq = item.find('=');
    std::string_view name = TrimOws(item.substr(0, eq));
    std::string_view arg = eq == std::string_view::npos ? std::string_view() : TrimOws(item.substr(eq + 1));
    Apply(&cc, name, arg, eq != std::string_view::npos);
  }
  return cc;
}

std::optional<CacheControl> ParseCdnCacheControl(std::string_view value) {
  CacheControl cc;
  for (std::string_view member : SplitOutsideQuotes(value, ',')) {
    member = TrimOws(member);
    if (member.empty()) return std::nullopt;
    size_t eq = member.find('=');
    size_t semi = member.find(';');
    if (semi < eq) eq = std::string_view::npos;  // key;param, no value
    std::string_view key = member.substr(0, std::min(eq, semi));
    if (!IsSfKey(key)) return std::nullopt;
    if (eq == std::string_view::npos) {
      Apply(&cc, key, {}, false);  // boolean true
      continue;
    }
    std::string_view item = member.substr(eq + 1);
    SfType type = BareItemType(item);
    if (type == SfType::kInvalid) return std::nullopt;
    const bool numeric = key == "max-age" || key == "s-maxage" || key == "stale-while-revalidate" ||
                         key == "stale-if-error";
    if (numeric && type != SfType::kInteger) continue;  // wrong type: the directive is ignored
    if (type == SfType::kBoolean && item.substr(0, 2) == "?0") continue;
    Apply(&cc, key, TrimOws(SplitOutsideQuotes(item, ';').front()), type != SfType::kBoolean);
  }
  return cc;
}

}  // namespace webtier::cache
