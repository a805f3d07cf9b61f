// Which fields cross between the webnode and its --origin, the same for both
// clients (http_origin.h, curl_origin.h): what goes out with a request, and
// what of an answer is kept.
#pragma once

#include <string_view>

#include "webtier/cache/message.h"
#include "webtier/common/http_syntax.h"

namespace webtier::cache {

// Calls `send(name, value)` for each field of a client's request that goes to
// the origin, in order, until it returns false; false then. Hop-by-hop and
// framing fields stay, as do the ones the request's Connection lists (read
// once into a set: thousands of tokens cost their number, not their product
// with the field count). Expect stays (no 100-continue wait). The client's
// Host goes along unless the origin's Host is fixed (--origin-host: an app
// behind the tier otherwise sees the name its clients used); Accept-Encoding
// goes along too: an app that compresses answers says so with Vary, and the
// cache keeps one variant per encoding.
template <typename Send>
bool ForEachFieldToOrigin(const Headers& request, bool host_fixed, Send&& send) {
  http_syntax::ConnectionOptions listed;
  for (const auto& [name, value] : request) {
    if (EqualsIgnoreCase(name, "Connection")) listed.Add(value);
  }
  for (const auto& [name, value] : request) {
    if (listed.Lists(name) || IsHopByHopOrLength(name) || EqualsIgnoreCase(name, "Expect") ||
        (host_fixed && EqualsIgnoreCase(name, "Host"))) {
      continue;
    }
    if (!send(name, value)) return false;
  }
  return true;
}

// Drops from an origin's answer the fields that end at the webnode: the
// hop-by-hop and framing ones, and the ones its Connection lines list
// (`listed`). A HEAD answer keeps its Content-Length: it is the
// representation's, and the answer to the client carries it.
inline void KeepEndToEnd(Headers* answer, const http_syntax::ConnectionOptions& listed, bool head_request) {
  std::erase_if(*answer, [&](const auto& field) {
    const std::string_view name = field.first;
    return listed.Lists(name) ||
           (IsHopByHopOrLength(name) && !(head_request && EqualsIgnoreCase(name, "Content-Length")));
  });
}

}  // namespace webtier::cache
