// Request-target and Host checks: one pass over the input each.
#include "webtier/cache/request_target.h"

#include <arpa/inet.h>

#include "webtier/cache/message.h"

namespace webtier::cache {
namespace {

bool IsHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool IsAlnum(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsUnreserved(char c) { return IsAlnum(c) || c == '-' || c == '.' || c == '_' || c == '~'; }
bool IsSubDelim(char c) {
  switch (c) {
    case '!': case '$': case '&': case '\'': case '(': case ')': case '*': case '+': case ',': case ';': case '=':
      return true;
    default:
      return false;
  }
}
char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// Whether s[i] starts a valid character of a path or query; advances `i` past it.
bool PathOrQueryChar(std::string_view s, size_t* i) {
  const char c = s[*i];
  if (c == '%') {
    if (*i + 2 >= s.size() || !IsHex(s[*i + 1]) || !IsHex(s[*i + 2])) return false;
    *i += 3;
    return true;
  }
  if (IsUnreserved(c) || IsSubDelim(c) || c == ':' || c == '@' || c == '/' || c == '?') {
    ++*i;
    return true;
  }
  return false;
}

}  // namespace

bool AcceptableTarget(std::string_view method, std::string_view target) {
  if (target == "*") return method == "OPTIONS";
  if (target.empty() || target.front() != '/') return false;
  if (target.size() > 1 && target[1] == '/') return false;
  for (size_t i = 0; i < target.size();) {
    if (!PathOrQueryChar(target, &i)) return false;
  }
  return true;
}

std::string_view SchemeFrom(std::string_view forwarded_proto) {
  return EqualsIgnoreCase(TrimOws(forwarded_proto), "https") ? "https" : "http";
}

std::optional<std::string> NormalizeHost(std::string_view host, std::string_view scheme) {
  std::string out;
  out.reserve(host.size());
  size_t i = 0;
  if (!host.empty() && host.front() == '[') {
    const size_t close = host.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    std::string_view literal = host.substr(1, close - 1);
    if (literal.empty()) return std::nullopt;
    if (literal.front() == 'v' || literal.front() == 'V') {  // IPvFuture: "v" 1*HEXDIG "." 1*(unreserved/sub-delims/":")
      size_t dot = literal.find('.');
      if (dot == std::string_view::npos || dot < 2 || dot + 1 >= literal.size()) return std::nullopt;
      for (size_t k = 1; k < dot; ++k) {
        if (!IsHex(literal[k])) return std::nullopt;
      }
      for (size_t k = dot + 1; k < literal.size(); ++k) {
        if (!IsUnreserved(literal[k]) && !IsSubDelim(literal[k]) && literal[k] != ':') return std::nullopt;
      }
    } else {
      // Hex digits, colons and the dots of an IPv4 tail only: inet_pton reads
      // a C string, so a NUL inside the brackets would hide what follows it.
      if (literal.size() > 45 || literal.find_first_not_of("0123456789abcdefABCDEF:.") != std::string_view::npos)
        return std::nullopt;
      char buf[64];
      unsigned char addr[16];
      literal.copy(buf, literal.size());
      buf[literal.size()] = '\0';
      if (inet_pton(AF_INET6, buf, addr) != 1) return std::nullopt;
    }
    for (size_t k = 0; k <= close; ++k) out.push_back(Lower(host[k]));
    i = close + 1;
  } else {
    for (; i < host.size() && host[i] != ':'; ++i) {
      const char c = host[i];
      if (c == '%') {
        if (i + 2 >= host.size() || !IsHex(host[i + 1]) || !IsHex(host[i + 2])) return std::nullopt;
      } else if (!IsUnreserved(c) && !IsSubDelim(c)) {
        return std::nullopt;
      }
      out.push_back(Lower(c));
    }
  }
  if (i == host.size()) return out;
  if (host[i] != ':') return std::nullopt;  // e.g. "[::1]x"
  std::string_view port = host.substr(i + 1);
  if (port.empty()) return out;  // "host:" means the default port
  unsigned long value = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<unsigned long>(c - '0');
    if (value > 65535) return std::nullopt;
  }
  const bool default_port = (value == 80 && scheme != "https") || (value == 443 && scheme != "http");
  if (!default_port) out += ":" + std::to_string(value);
  return out;
}

std::optional<std::vector<std::string>> ParseHostList(std::string_view list, std::string* bad) {
  std::vector<std::string> out;
  if (TrimOws(list).empty()) return out;
  for (;;) {
    const size_t comma = list.find(',');
    std::string_view entry = TrimOws(list.substr(0, comma));
    std::optional<std::string> host = NormalizeHost(entry, "");
    if (entry.empty() || !host.has_value() || host->empty()) {
      if (bad != nullptr) *bad = std::string(entry);
      return std::nullopt;
    }
    out.push_back(std::move(*host));
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return out;
}

bool HostAllowed(std::string_view normalised, const std::vector<std::string>& allowed) {
  if (allowed.empty()) return true;
  for (const auto& a : allowed) {
    if (a == normalised) return true;
  }
  return false;
}

}  // namespace webtier::cache
