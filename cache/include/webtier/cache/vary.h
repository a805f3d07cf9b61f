// Vary (RFC 9111 4.1): which request fields select a stored response, and
// the normalised form of a request's selecting fields that identifies its
// variant. Every Vary field line counts; `Vary: *` matches no request.
//
// Storage: the entry at the URL's key holds the latest variant stored; every
// variant is also stored at VariantKey(key, generation, variant). The
// generation is a random number shared by the variants stored while the URL's
// entry exists: purging the URL's key orphans all of them at once (the next
// fill starts a new generation, and orphans expire on their own).
// Pure functions, thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "webtier/cache/message.h"

namespace webtier::cache {

struct Vary {
  std::vector<std::string> names;  // lower case, sorted, unique
  bool star = false;               // `*`: never reused
  bool empty() const { return names.empty() && !star; }
};

// Every Vary line of `response_headers`.
Vary ParseVary(const Headers& response_headers);

// The request's selecting fields, normalised: every line of each field joined,
// members trimmed (Accept-Language also lower-cased and sorted); a missing
// field differs from an empty one. "" when `vary` names nothing.
std::string SelectingFields(const Vary& vary, const Headers& request_headers);

std::string VariantKey(std::string_view key, uint64_t generation, std::string_view variant);

}  // namespace webtier::cache
