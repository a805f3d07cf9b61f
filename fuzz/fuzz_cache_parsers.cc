// Fuzzes what the response cache reads from outside: records read back from
// Redis (corrupt, truncated or of another format version) and the request
// and origin header values it interprets (Cache-Control, CDN-Cache-Control,
// HTTP-dates, Vary, conditionals and Range), and the webnode's checks of a
// request's target and Host (request_target.h). The first byte picks the parser,
// the rest is its input. Nothing may crash or throw, and what decodes must
// survive a round trip.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "webtier/cache/cache_control.h"
#include "webtier/cache/conditional.h"
#include "webtier/cache/http_date.h"
#include "webtier/cache/message.h"
#include "webtier/cache/record.h"
#include "webtier/cache/request_target.h"
#include "webtier/cache/vary.h"

namespace {

using namespace webtier::cache;

// "name: value" lines (either line end), as header fields.
Headers Lines(std::string_view text) {
  Headers out;
  while (!text.empty()) {
    size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (size_t colon = line.find(':'); colon != std::string_view::npos)
      out.emplace_back(std::string(line.substr(0, colon)), std::string(TrimOws(line.substr(colon + 1))));
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return out;
}

void StoredRecord(std::string_view bytes) {
  Record r;
  if (!DecodeRecord(bytes, &r).ok()) return;
  const std::string encoded = EncodeRecord(r);
  Record again;
  if (!DecodeRecord(encoded, &again).ok() || EncodeRecord(again) != encoded) std::abort();
  (void)r.At(0);
  (void)r.AgeSeconds(INT64_MAX);
  (void)r.RetainMs();
}

void Directives(std::string_view value) {
  (void)ParseCacheControl(value);
  (void)ParseCdnCacheControl(value);
  (void)ParseDeltaSeconds(value);
}

void Date(std::string_view text) {
  const std::optional<int64_t> t = ParseHttpDate(text, 1'800'000'000);
  // Years 1970-9999 print as an IMF-fixdate that reads back as the same second.
  if (t && *t >= 0 && *t <= 253'402'300'799 && ParseHttpDate(FormatHttpDate(*t)) != t) std::abort();
}

// The request's fields before a blank line, the stored response's after it.
void Validators(std::string_view text) {
  const size_t split = text.find("\n\n");
  Request request;
  request.headers = Lines(text.substr(0, split));
  Response response;
  response.headers = Lines(split == std::string_view::npos ? std::string_view() : text.substr(split + 2));
  response.body = "0123456789abcdefghijklmnopqrstuvwxyz";
  (void)SelectingFields(ParseVary(response.headers), request.headers);
  (void)ClientHasIt(request, response);
  (void)OriginRequestFor(request, &response);
  const size_t full = response.body.size();
  if (ApplyRange(request, &response) && (response.status != 206 || response.body.size() > full)) std::abort();
}

// A request target: the method before a space, the target after it. What is
// accepted starts with one "/" (or is "*" for OPTIONS) and has no byte a URL
// parser could read as the end of the path.
void Target(std::string_view text) {
  const size_t sp = text.find(' ');
  const std::string_view method = sp == std::string_view::npos ? "GET" : text.substr(0, sp);
  const std::string_view target = sp == std::string_view::npos ? text : text.substr(sp + 1);
  if (!AcceptableTarget(method, target)) return;
  if (target == "*") {
    if (method != "OPTIONS") std::abort();
    return;
  }
  if (target.empty() || target[0] != '/' || (target.size() > 1 && target[1] == '/')) std::abort();
  if (target.find_first_of(" \\#\"<>{}|^`\r\n\t") != std::string_view::npos) std::abort();
}

// A scheme line, then a Host value (or a --host list). A normalised host is
// a fixed point, has no upper case, and never holds a byte that could end
// the authority in a URL.
void Host(std::string_view text) {
  const size_t nl = text.find('\n');
  const std::string_view scheme = SchemeFrom(nl == std::string_view::npos ? std::string_view() : text.substr(0, nl));
  const std::string_view value = nl == std::string_view::npos ? text : text.substr(nl + 1);
  if (const auto host = NormalizeHost(value, scheme)) {
    if (NormalizeHost(*host, scheme) != host) std::abort();
    if (host->find_first_of("/@\\?# \t\r\nABCDEFGHIJKLMNOPQRSTUVWXYZ") != std::string::npos) std::abort();
    if (!HostAllowed(*host, {}) ) std::abort();
  }
  if (const auto list = ParseHostList(value)) {
    for (const auto& h : *list) {
      if (h.empty() || NormalizeHost(h, "") != h) std::abort();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 6) {
    case 0: StoredRecord(in); break;
    case 1: Directives(in); break;
    case 2: Date(in); break;
    case 3: Validators(in); break;
    case 4: Target(in); break;
    default: Host(in); break;
  }
  return 0;
}
