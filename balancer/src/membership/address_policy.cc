// --member-allow: CIDR parsing and the match (address_policy.h has the rule).
#include "webtier/balancer/membership/address_policy.h"

#include <arpa/inet.h>

#include <cassert>
#include <cstring>

namespace webtier::balancer {

namespace {

// The ranges refused unless an entry within them allows them, with why.
struct Refused {
  IpNetwork net;
  const char* why;
};

const std::vector<Refused>& RefusedByDefault() {
  static const std::vector<Refused> refused = [] {
    std::vector<Refused> out;
    for (auto [text, why] : {std::pair{"169.254.169.254/32", "cloud metadata address"},
                             std::pair{"fd00:ec2::254/128", "cloud metadata address"},
                             std::pair{"169.254.0.0/16", "link-local address"},
                             std::pair{"fe80::/10", "link-local address"},
                             std::pair{"0.0.0.0/8", "unspecified address"},
                             std::pair{"::/128", "unspecified address"}}) {
      IpNetwork n;
      Status parsed = IpNetwork::Parse(text, &n);
      assert(parsed.ok());  // constant, valid networks
      (void)parsed;
      out.push_back({n, why});
    }
    return out;
  }();
  return refused;
}

int MaxBits(const IpAddress& a) { return a.v4 ? 32 : 128; }

bool PrefixEqual(const IpAddress& a, const IpAddress& b, int bits) {
  const int full = bits / 8;
  if (std::memcmp(a.bytes.data(), b.bytes.data(), static_cast<size_t>(full)) != 0) return false;
  if (bits % 8 == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xff << (8 - bits % 8));
  return (a.bytes[static_cast<size_t>(full)] & mask) == (b.bytes[static_cast<size_t>(full)] & mask);
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

IpAddress IpAddress::FromV4Bytes(const std::array<uint8_t, 4>& bytes) {
  IpAddress a;
  a.v4 = true;
  std::memcpy(a.bytes.data(), bytes.data(), 4);
  return a;
}

IpAddress IpAddress::FromV6Bytes(const std::array<uint8_t, 16>& bytes) {
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(bytes.data(), kMapped, sizeof kMapped) == 0)
    return FromV4Bytes({bytes[12], bytes[13], bytes[14], bytes[15]});
  IpAddress a;
  a.bytes = bytes;
  return a;
}

bool IpAddress::Parse(std::string_view text, IpAddress* out) {
  if (text.empty() || text.size() > 64) return false;
  const std::string s(text);  // inet_pton wants a terminated string
  if (s.find('\0') != std::string::npos) return false;
  std::array<uint8_t, 16> b{};
  if (s.find(':') == std::string::npos) {
    if (inet_pton(AF_INET, s.c_str(), b.data()) != 1) return false;
    *out = FromV4Bytes({b[0], b[1], b[2], b[3]});
    return true;
  }
  if (inet_pton(AF_INET6, s.c_str(), b.data()) != 1) return false;
  *out = FromV6Bytes(b);
  return true;
}

std::string IpAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(v4 ? AF_INET : AF_INET6, bytes.data(), buf, sizeof buf);
  return buf;
}

Status IpNetwork::Parse(std::string_view text, IpNetwork* out) {
  const size_t slash = text.find('/');
  IpAddress base;
  if (!IpAddress::Parse(text.substr(0, slash), &base))
    return Status(ErrorCode::kInvalidArgument, "not an IP address or CIDR range: '" + std::string(text) + "'");
  // A mapped IPv6 range names IPv4 addresses: keep its prefix length in IPv4 terms.
  const bool folded = base.v4 && text.substr(0, slash).find(':') != std::string_view::npos;
  int bits = MaxBits(base);
  if (slash != std::string_view::npos) {
    std::string_view len = text.substr(slash + 1);
    if (len.empty() || len.size() > 3) return Status(ErrorCode::kInvalidArgument, "bad prefix length in '" + std::string(text) + "'");
    bits = 0;
    for (char c : len) {
      if (c < '0' || c > '9') return Status(ErrorCode::kInvalidArgument, "bad prefix length in '" + std::string(text) + "'");
      bits = bits * 10 + (c - '0');
    }
    if (folded) {
      if (bits < 96) return Status(ErrorCode::kInvalidArgument, "IPv4-mapped range shorter than /96: '" + std::string(text) + "'");
      bits -= 96;
    }
    if (bits > MaxBits(base))
      return Status(ErrorCode::kInvalidArgument, "prefix length too long in '" + std::string(text) + "'");
  }
  IpNetwork n{base, bits};
  IpAddress masked = base;
  for (int i = 0; i < MaxBits(base); ++i) {
    if (i >= bits) masked.bytes[static_cast<size_t>(i / 8)] &= static_cast<uint8_t>(~(0x80 >> (i % 8)));
  }
  if (masked.bytes != base.bytes)
    return Status(ErrorCode::kInvalidArgument, "host bits set in '" + std::string(text) + "' (did you mean " +
                                                   IpNetwork{masked, bits}.ToString() + "?)");
  *out = n;
  return Status::Ok();
}

bool IpNetwork::Contains(const IpAddress& a) const { return a.v4 == base.v4 && PrefixEqual(a, base, bits); }

bool IpNetwork::Contains(const IpNetwork& n) const { return n.bits >= bits && Contains(n.base); }

std::string IpNetwork::ToString() const { return base.ToString() + "/" + std::to_string(bits); }

Status AddressPolicy::Parse(std::string_view list, AddressPolicy* out) {
  AddressPolicy p;
  if (!Trim(list).empty()) {
    for (size_t start = 0; start <= list.size();) {
      size_t comma = list.find(',', start);
      if (comma == std::string_view::npos) comma = list.size();
      std::string_view entry = Trim(list.substr(start, comma - start));
      if (entry.empty()) return Status(ErrorCode::kInvalidArgument, "empty entry in the list");
      IpNetwork n;
      if (Status s = IpNetwork::Parse(entry, &n); !s.ok()) return s;
      p.allow_.push_back(n);
      start = comma + 1;
    }
  }
  *out = std::move(p);
  return Status::Ok();
}

std::string AddressPolicy::Refusal(const IpAddress& a) const {
  const Refused* narrowest = nullptr;
  for (const Refused& r : RefusedByDefault()) {
    if (r.net.Contains(a) && (narrowest == nullptr || r.net.bits > narrowest->net.bits)) narrowest = &r;
  }
  if (allow_.empty()) return narrowest != nullptr ? narrowest->why : "";
  for (const IpNetwork& e : allow_) {
    if (e.Contains(a) && (narrowest == nullptr || narrowest->net.Contains(e))) return "";
  }
  return narrowest != nullptr ? narrowest->why : "outside --member-allow";
}

std::string AddressPolicy::ToString() const {
  std::string out;
  for (const IpNetwork& e : allow_) out += (out.empty() ? "" : ",") + e.ToString();
  return out;
}

}  // namespace webtier::balancer
