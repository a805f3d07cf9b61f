// Header helpers shared by the cache, the demo app and the origin client.
#include "webtier/cache/message.h"

namespace webtier::cache {

std::string_view FindHeader(const Headers& headers, std::string_view name) {
  for (const auto& [n, v] : headers) {
    if (EqualsIgnoreCase(n, name)) return v;
  }
  return {};
}

bool HasHeader(const Headers& headers, std::string_view name) {
  for (const auto& [n, v] : headers) {
    if (EqualsIgnoreCase(n, name)) return true;
  }
  return false;
}

bool IsHopByHopOrLength(std::string_view name) {
  return http_syntax::IsHopByHopField(name) || EqualsIgnoreCase(name, "Content-Length");
}

Response ErrorResponse(int status, std::string_view message) {
  Response r;
  r.status = status;
  r.headers.emplace_back("Content-Type", "application/json");
  r.body = "{\"error\":\"" + std::string(message) + "\"}";
  return r;
}

}  // namespace webtier::cache
