// HTTP's shared syntax rules (http_syntax.h has the contract).
#include "webtier/common/http_syntax.h"

#include <algorithm>

namespace webtier::http_syntax {

namespace {

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

}  // namespace

std::string LowerCopy(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = Lower(c);
  return out;
}

bool IsTokenChar(char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool IsToken(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), IsTokenChar); }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool IsHopByHopField(std::string_view name) {
  for (std::string_view n : kHopByHopFields) {
    if (EqualsIgnoreCase(n, name)) return true;
  }
  return false;
}

void ConnectionOptions::Add(std::string_view value) {
  ForEachListElement(value, [&](std::string_view token) {
    if (token.empty()) return true;
    if (EqualsIgnoreCase(token, "close")) close_ = true;
    if (EqualsIgnoreCase(token, "keep-alive")) keep_alive_ = true;
    if (EqualsIgnoreCase(token, "upgrade")) upgrade_ = true;
    listed_.insert(LowerCopy(token));
    return true;
  });
}

bool ConnectionOptions::Lists(std::string_view name) const {
  if (listed_.empty()) return false;
  return listed_.count(LowerCopy(name)) != 0;
}

}  // namespace webtier::http_syntax
