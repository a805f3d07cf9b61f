// What the webnode accepts as a request's target and Host before anything is
// looked up or forwarded: the target must be origin-form (a path that can
// never be read as another authority when the origin URL is built), and the
// Host a valid authority, normalised so that the cache key and the Host the
// origin is given are the same string. Pure functions, no allocation beyond
// the result; fuzzed by fuzz/fuzz_cache_parsers.cc.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace webtier::cache {

// Whether `target` (the request line's second word, query included) may be
// answered by `method`: origin-form, "/" path ["?" query] with only the
// characters a path and query may hold (RFC 3986 pchar, "/" and "?"; "%" only
// before two hex digits), and not starting with "//" (a scheme-relative
// reference in many URL parsers); or "*" for OPTIONS only. Absolute-form
// ("http://h/x"), authority-form and anything else ("@h/x", "\\h") are not.
bool AcceptableTarget(std::string_view method, std::string_view target);

// The scheme a request arrived with, from X-Forwarded-Proto as the balancer
// sets it: "https" for exactly "https" (any case, surrounding blanks ignored),
// else "http".
std::string_view SchemeFrom(std::string_view forwarded_proto);

// A Host field value (uri-host [":" port], RFC 3986 3.2.2: reg-name, IPv4 or
// an IP-literal in brackets) normalised: lower case, the port as a number,
// dropped when empty or the scheme's default (80 for "http", 443 for "https";
// `scheme` empty drops either). nullopt when it is not a valid authority
// host (spaces, "/", "@", "\\", controls, a bad bracket, a port above 65535).
// An empty value stays empty.
std::optional<std::string> NormalizeHost(std::string_view host, std::string_view scheme);

// A comma-separated list of hosts (--host), each normalised as above with an
// empty scheme. nullopt when an entry is empty or invalid (`*bad` names it).
std::optional<std::vector<std::string>> ParseHostList(std::string_view list, std::string* bad = nullptr);

// Whether `normalised` (NormalizeHost's result for the request's scheme) is
// one of `allowed`, or `allowed` is empty. A listed entry without a port also
// admits its host with the scheme's default port (already dropped).
bool HostAllowed(std::string_view normalised, const std::vector<std::string>& allowed);

}  // namespace webtier::cache
