// HTTP's shared syntax rules (RFC 9110 section 5.6 and 7.6.1), once for both
// programs: tokens, optional whitespace, comma-separated lists, and which
// fields belong to one connection and never cross a proxy. Every function is
// linear in its input, however hostile: a Connection line of thousands of
// tokens beside thousands of fields costs their sum, not their product.
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <unordered_set>

namespace webtier::http_syntax {

// tchar: the characters of a token (field names, methods, codings, options).
bool IsTokenChar(char c);
// A non-empty run of tchar.
bool IsToken(std::string_view s);
// ASCII case-insensitive equality (field names and tokens are ASCII). Use it
// rather than boost::beast::iequals, which in Boost 1.81 reads one byte past
// both strings whenever they differ only in letter case.
bool EqualsIgnoreCase(std::string_view a, std::string_view b);
// `s` with its ASCII letters in lower case (other bytes unchanged).
std::string LowerCopy(std::string_view s);
// `s` without leading and trailing spaces and tabs (OWS).
std::string_view TrimOws(std::string_view s);

// Calls `visit(element)` for each element of a comma-separated list value,
// OWS trimmed, empty elements included (a caller decides whether "a,,b" is
// an error); stops early when `visit` returns false.
template <typename Visit>
void ForEachListElement(std::string_view value, Visit&& visit) {
  for (;;) {
    const size_t comma = value.find(',');
    if (!visit(TrimOws(value.substr(0, comma)))) return;
    if (comma == std::string_view::npos) return;
    value.remove_prefix(comma + 1);
  }
}

// The fields that describe one connection, dropped by every proxy whatever
// Connection says: the ones RFC 9110 7.6.1 names (Proxy-Connection,
// Keep-Alive, TE, Transfer-Encoding, Upgrade) besides Connection itself,
// Trailer (it announces fields of a chunked message, whose framing the next
// hop may not keep) and the proxy credentials (RFC 9110 11.7.1, 11.7.2:
// meant for the proxy, not the next hop).
inline constexpr std::array<std::string_view, 9> kHopByHopFields = {
    "Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Transfer-Encoding", "Upgrade",
    "Proxy-Authenticate", "Proxy-Authorization"};
bool IsHopByHopField(std::string_view name);

// What the Connection lines of one message say: the options close,
// keep-alive and upgrade, and every field name listed, which is hop-by-hop
// too (RFC 9110 7.6.1). Add() each Connection line, then ask.
class ConnectionOptions {
 public:
  void Add(std::string_view value);
  bool close() const { return close_; }
  bool keep_alive() const { return keep_alive_; }
  bool upgrade() const { return upgrade_; }
  // True when `name` is listed (case-insensitive); constant time.
  bool Lists(std::string_view name) const;
  bool empty() const { return listed_.empty(); }

 private:
  std::unordered_set<std::string> listed_;  // lower-cased
  bool close_ = false, keep_alive_ = false, upgrade_ = false;
};

}  // namespace webtier::http_syntax
