// Conditional request handling.
#include "webtier/cache/message.h"
#include "webtier/cache/conditional.h"

#include <algorithm>
#include <array>
#include <optional>
#include <unordered_set>

#include "webtier/cache/http_date.h"

namespace webtier::cache {
namespace {

std::string_view Opaque(std::string_view tag) {
  tag = TrimOws(tag);
  if (tag.substr(0, 2) == "W/") tag.remove_prefix(2);
  return tag;
}

// Weak comparison (RFC 9110 8.8.3.2) of `etag` against a list or "*".
bool MatchesAny(std::string_view list, std::string_view etag) {
  if (TrimOws(list) == "*") return true;
  const std::string_view mine = Opaque(etag);
  while (!list.empty()) {
    size_t comma = list.find(',');
    if (Opaque(list.substr(0, comma)) == mine) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

bool IsClientOnly(std::string_view name) {
  static constexpr std::array<std::string_view, 8> kNames = {
      "Range", "If-Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since",
      "Authorization", "Cookie"};
  for (auto n : kNames) {
    if (EqualsIgnoreCase(n, name)) return true;
  }
  return false;
}

}  // namespace

bool ClientHasIt(const Request& request, const Response& response) {
  if (response.status != 200) return false;
  if (HasHeader(request.headers, "If-None-Match")) {
    std::string_view etag = FindHeader(response.headers, "ETag");
    return !etag.empty() && MatchesAny(FindHeader(request.headers, "If-None-Match"), etag);
  }
  if (!HasHeader(request.headers, "If-Modified-Since")) return false;
  auto since = ParseHttpDate(TrimOws(FindHeader(request.headers, "If-Modified-Since")));
  std::string_view validator = HasHeader(response.headers, "Last-Modified") ? FindHeader(response.headers, "Last-Modified")
                                                                             : FindHeader(response.headers, "Date");
  auto modified = ParseHttpDate(TrimOws(validator));
  return since.has_value() && modified.has_value() && *modified <= *since;
}

bool ApplyRange(const Request& request, Response* response) {
  if (response->status != 200 || !HasHeader(request.headers, "Range")) return false;
  if (HasHeader(request.headers, "If-Range")) {
    std::string_view if_range = TrimOws(FindHeader(request.headers, "If-Range"));
    std::string_view etag = FindHeader(response->headers, "ETag");
    const bool strong_match = !etag.empty() && etag.substr(0, 2) != "W/" && if_range == TrimOws(etag);
    const bool date_match = if_range == TrimOws(FindHeader(response->headers, "Last-Modified"));
    if (!strong_match && !date_match) return false;
  }
  std::string_view spec = TrimOws(FindHeader(request.headers, "Range"));
  if (spec.substr(0, 6) != "bytes=" || spec.find(',') != std::string_view::npos) return false;
  spec.remove_prefix(6);
  const size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return false;
  auto number = [](std::string_view digits) -> std::optional<uint64_t> {
    digits = TrimOws(digits);
    if (digits.empty() || digits.size() > 18) return std::nullopt;
    uint64_t v = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') return std::nullopt;
      v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    return v;
  };
  const uint64_t size = response->body.size();
  uint64_t first = 0, last = 0;
  if (dash == 0) {  // suffix: the last n bytes
    auto n = number(spec.substr(1));
    if (!n || *n == 0 || size == 0) return false;
    first = *n >= size ? 0 : size - *n;
    last = size - 1;
  } else {
    auto a = number(spec.substr(0, dash));
    if (!a || *a >= size) return false;
    first = *a;
    auto b = TrimOws(spec.substr(dash + 1)).empty() ? std::optional<uint64_t>(size - 1) : number(spec.substr(dash + 1));
    if (!b || *b < first) return false;
    last = std::min<uint64_t>(*b, size - 1);
  }
  response->status = 206;
  response->headers.emplace_back("Content-Range", "bytes " + std::to_string(first) + "-" + std::to_string(last) + "/" +
                                                      std::to_string(size));
  response->body = response->body.substr(first, last - first + 1);
  return true;
}

Response NotModifiedFor(const Response& full) {
  Response r;
  r.status = 304;
  for (const auto& [name, value] : full.headers) {
    const bool content = name.size() >= 8 && EqualsIgnoreCase(std::string_view(name).substr(0, 8), "Content-") &&
                         !EqualsIgnoreCase(name, "Content-Location");
    if (!content) r.headers.emplace_back(name, value);
  }
  return r;
}

void UpdateFrom304(Response* stored, const Response& not_modified) {
  // The 304's field names as a set: one pass over each list, not their product.
  std::unordered_set<std::string> replaced;
  for (const auto& [name, value] : not_modified.headers) {
    std::string lower = name;
    for (char& c : lower) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    replaced.insert(std::move(lower));
  }
  Headers updated;
  for (const auto& [name, value] : stored->headers) {
    std::string lower = name;
    for (char& c : lower) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    if (EqualsIgnoreCase(name, "Content-Length") || replaced.count(lower) == 0) {
      updated.emplace_back(name, value);
    }
  }
  for (const auto& [name, value] : not_modified.headers) {
    if (!EqualsIgnoreCase(name, "Content-Length") && !IsHopByHopOrLength(name)) updated.emplace_back(name, value);
  }
  stored->headers = std::move(updated);
}

Request OriginRequestFor(const Request& client, const Response* validate) {
  Request r;
  r.method = "GET";
  r.path = client.path;
  r.query = client.query;
  r.host = client.host;
  for (const auto& [name, value] : client.headers) {
    if (!IsClientOnly(name)) r.headers.emplace_back(name, value);
  }
  if (validate != nullptr) {
    if (HasHeader(validate->headers, "ETag")) {
      r.headers.emplace_back("If-None-Match", std::string(FindHeader(validate->headers, "ETag")));
    }
    if (HasHeader(validate->headers, "Last-Modified")) {
      r.headers.emplace_back("If-Modified-Since", std::string(FindHeader(validate->headers, "Last-Modified")));
    }
  }
  return r;
}

}  // namespace webtier::cache
