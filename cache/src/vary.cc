// Vary parsing and variant identity.
#include "webtier/cache/message.h"
#include "webtier/cache/vary.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "webtier/cache/record.h"

namespace webtier::cache {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::vector<std::string> Members(std::string_view list) {
  std::vector<std::string> out;
  while (true) {
    size_t comma = list.find(',');
    std::string_view m = TrimOws(list.substr(0, comma));
    if (!m.empty()) out.emplace_back(m);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return out;
}

}  // namespace

Vary ParseVary(const Headers& response_headers) {
  Vary vary;
  for (const auto& [name, value] : response_headers) {
    if (!EqualsIgnoreCase(name, "Vary")) continue;
    for (auto& m : Members(value)) {
      if (m == "*") {
        vary.star = true;
      } else {
        vary.names.push_back(Lower(m));
      }
    }
  }
  std::sort(vary.names.begin(), vary.names.end());
  vary.names.erase(std::unique(vary.names.begin(), vary.names.end()), vary.names.end());
  return vary;
}

std::string SelectingFields(const Vary& vary, const Headers& request_headers) {
  // One pass over the request's fields (vary.names is sorted): the cost is
  // the fields plus the names, never their product.
  std::vector<std::vector<std::string>> members(vary.names.size());
  std::vector<bool> present(vary.names.size(), false);
  if (!vary.names.empty()) {
    for (const auto& [n, v] : request_headers) {
      const std::string lower = Lower(n);
      auto it = std::lower_bound(vary.names.begin(), vary.names.end(), lower);
      if (it == vary.names.end() || *it != lower) continue;
      const size_t i = static_cast<size_t>(it - vary.names.begin());
      present[i] = true;
      for (auto& m : Members(v)) members[i].push_back(std::move(m));
    }
  }
  std::string out;
  for (size_t k = 0; k < vary.names.size(); ++k) {
    const std::string& name = vary.names[k];
    std::vector<std::string>& list = members[k];
    if (name == "accept-language") {
      for (auto& m : list) m = Lower(m);
      std::sort(list.begin(), list.end());
    }
    out += name;
    out += present[k] ? ':' : '!';
    for (size_t i = 0; i < list.size(); ++i) {
      if (i > 0) out += ',';
      out += list[i];
    }
    out += '\n';
  }
  return out;
}

std::string VariantKey(std::string_view key, uint64_t generation, std::string_view variant) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "#%016llx:%08x", static_cast<unsigned long long>(generation),
                static_cast<unsigned>(Crc32(variant)));
  return std::string(key) + buf;
}

}  // namespace webtier::cache
