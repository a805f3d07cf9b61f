#include "webtier/balancer/http/admin_path.h"

#include <string>
#include <vector>

#include "webtier/common/http_syntax.h"

namespace webtier::balancer {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// One round of %XX decoding; malformed escapes stay as they are.
std::string PercentDecode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size()) {
      const int hi = HexValue(in[i + 1]), lo = HexValue(in[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(in[i]);
  }
  return out;
}

// The first segment left after dropping empty and "." segments and resolving "..".
std::string FirstSegment(std::string_view path) {
  std::vector<std::string_view> segments;
  while (!path.empty()) {
    const size_t slash = path.find('/');
    const std::string_view segment = path.substr(0, slash);
    path = slash == std::string_view::npos ? std::string_view() : path.substr(slash + 1);
    if (segment.empty() || segment == ".") continue;
    if (segment == "..") {
      if (!segments.empty()) segments.pop_back();
      continue;
    }
    segments.push_back(segment);
  }
  return segments.empty() ? std::string() : std::string(segments.front());
}

// Whether `s` contains "admin" in any letter case.
bool MentionsAdmin(std::string_view s) {
  constexpr std::string_view kWord = "admin";
  for (size_t i = 0; i + kWord.size() <= s.size(); ++i) {
    if (http_syntax::EqualsIgnoreCase(s.substr(i, kWord.size()), kWord)) return true;
  }
  return false;
}

}  // namespace

bool IsAdminPath(std::string_view target) {
  const std::string_view raw = target.substr(0, target.find_first_of("?#"));
  // Every request passes here: without an escape, a path that never spells
  // "admin" cannot name the admin routes, and costs no allocation.
  if (raw.find('%') == std::string_view::npos && !MentionsAdmin(raw)) return false;
  std::string path(raw);
  for (int round = 0; round < 4 && path.find('%') != std::string::npos; ++round) {
    std::string decoded = PercentDecode(path);
    if (decoded == path) break;
    path = std::move(decoded);
  }
  // A path parameter (";x") does not change which route a segment names.
  std::string first = FirstSegment(path);
  first = first.substr(0, first.find(';'));
  return http_syntax::EqualsIgnoreCase(first, "admin");
}

}  // namespace webtier::balancer
