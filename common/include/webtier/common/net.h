// Small network facts shared by both programs: host:port parsing and
// local-address discovery. No sockets are kept open.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "webtier/common/status.h"

namespace webtier::net {

struct HostPort {
  std::string host;  // name or IPv4/IPv6 literal (without brackets)
  uint16_t port = 0;
  std::string ToString() const;  // "host:port", IPv6 in brackets
  bool operator==(const HostPort&) const = default;
};

// Parses "host:port", "[v6]:port", ":port" (host empty) or, when
// `default_port` is given, a bare "host". Port must be 1..65535.
Status ParseHostPort(std::string_view text, HostPort* out, std::optional<uint16_t> default_port = {});

// An address to listen on: "host:port" as ParseHostPort takes it (no default
// port), where port 0 is accepted too and means any free port (the programs
// log the port they bound in their "listening" line).
Status ParseListenAddress(std::string_view text, HostPort* out);

// The local address the kernel would use to reach `remote_ip` (UDP connect +
// getsockname, nothing is sent). Empty on failure.
std::string LocalAddressToward(const std::string& remote_ip);

// True for 127.0.0.0/8, ::1 and "localhost".
bool IsLoopback(std::string_view host);
// True for 0.0.0.0, :: and "" (listen on every interface).
bool IsWildcard(std::string_view host);

// gethostname(), or "localhost" if that fails.
std::string Hostname();

}  // namespace webtier::net
