// HTTP-date (RFC 9110 5.6.7): parsing of the three formats a recipient must
// accept (IMF-fixdate, RFC 850, asctime), strictly, and IMF-fixdate output.
// Pure functions, thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace webtier::cache {

// Unix seconds, or nullopt when `text` is not an HTTP-date (names compare
// case-insensitively; the zone must be GMT; an RFC 850 two-digit year more
// than 50 years ahead of `now_unix_s`, 0 = the system clock, is taken as the
// past century).
std::optional<int64_t> ParseHttpDate(std::string_view text, int64_t now_unix_s = 0);

// "Sun, 06 Nov 1994 08:49:37 GMT".
std::string FormatHttpDate(int64_t unix_s);

}  // namespace webtier::cache
