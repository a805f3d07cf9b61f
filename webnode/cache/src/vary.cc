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
  std::string out;
  for (const auto& name : vary.names) {
    std::vector<std::string> members;
    bool present = false;
    for (const auto& [n, v] : request_headers) {
      if (!EqualsIgnoreCase(n, name)) continue;
      present = true;
      for (auto& m : Members(v)) members.push_back(std::move(m));
    }
    if (name == "accept-language") {
      for (auto& m : members) m = Lower(m);
      std::sort(members.begin(), members.end());
    }
    out += name;
    out += present ? ':' : '!';
    for (size_t i = 0; i < members.size(); ++i) {
      if (i > 0) out += ',';
      out += members[i];
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
