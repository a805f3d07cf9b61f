// host:port parsing and local-address discovery.
#include "webtier/common/net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>

namespace webtier::net {

std::string HostPort::ToString() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

namespace {

Status Parse(std::string_view text, HostPort* out, std::optional<uint16_t> default_port, unsigned min_port) {
  auto bad = [&](const char* why) {
    return Status(ErrorCode::kInvalidArgument, "invalid address '" + std::string(text) + "': " + why);
  };
  std::string_view host, port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos) return bad("missing ']'");
    host = text.substr(1, close - 1);
    auto rest = text.substr(close + 1);
    if (rest.empty()) {
      if (!default_port) return bad("missing port");
    } else if (rest.front() != ':') {
      return bad("expected ':' after ']'");
    } else {
      port = rest.substr(1);
    }
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      if (!default_port) return bad("expected host:port");
      host = text;
    } else {
      if (text.find(':') != colon) return bad("IPv6 addresses need [brackets]");
      host = text.substr(0, colon);
      port = text.substr(colon + 1);
    }
  }
  uint16_t p = default_port.value_or(0);
  if (!port.empty() || !default_port) {
    unsigned v = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
    if (port.empty() || ec != std::errc() || ptr != port.data() + port.size()) return bad("port is not a number");
    if (v < min_port || v > 65535) return bad(min_port == 0 ? "port out of range 0..65535" : "port out of range 1..65535");
    p = static_cast<uint16_t>(v);
  }
  out->host = std::string(host);
  out->port = p;
  return Status::Ok();
}

}  // namespace

Status ParseHostPort(std::string_view text, HostPort* out, std::optional<uint16_t> default_port) {
  return Parse(text, out, default_port, 1);
}

Status ParseListenAddress(std::string_view text, HostPort* out) { return Parse(text, out, std::nullopt, 0); }

std::string LocalAddressToward(const std::string& remote_ip) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_INET;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, remote_ip.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(9);
    len = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, remote_ip.c_str(), &v6->sin6_addr) == 1) {
    family = AF_INET6;
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(9);
    len = sizeof(sockaddr_in6);
  } else {
    return {};
  }
  int fd = ::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return {};
  std::string result;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0) {
    sockaddr_storage local{};
    socklen_t llen = sizeof local;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &llen) == 0) {
      char buf[INET6_ADDRSTRLEN] = {};
      const void* addr = family == AF_INET
                             ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(&local)->sin_addr)
                             : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(&local)->sin6_addr);
      if (inet_ntop(family, addr, buf, sizeof buf) != nullptr) result = buf;
    }
  }
  ::close(fd);
  return result;
}

bool IsLoopback(std::string_view host) {
  return host == "localhost" || host == "::1" || host.substr(0, 4) == "127.";
}

bool IsWildcard(std::string_view host) { return host.empty() || host == "0.0.0.0" || host == "::"; }

std::string Hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

}  // namespace webtier::net
