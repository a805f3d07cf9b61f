// Which member addresses the balancer may connect to (--member-allow). A
// member record is written by whoever can write to ZooKeeper; this policy is
// the balancer's own check of where that record points, applied to the
// address actually connected to (after name resolution).
//
// The rule, for an address A (an IPv4-mapped IPv6 address counts as the IPv4
// address it carries):
// - Some ranges are refused by default: 0.0.0.0/8 and ::/128 (unspecified),
//   169.254.0.0/16 and fe80::/10 (link-local), 169.254.169.254/32 and
//   fd00:ec2::254/128 (cloud metadata services). Let R be the narrowest of
//   them holding A.
// - Empty list: A is allowed unless it is in such an R.
// - Otherwise A is allowed when some entry E holds A and, if there is an R,
//   E lies within R: only an entry that names a refused range (or a part of
//   it) lets members in there. So 0.0.0.0/0 does not allow link-local,
//   169.254.0.0/16 allows link-local members but not the metadata address, and
//   only 169.254.169.254/32 allows that one.
// An IPv4 entry matches IPv4 addresses only, an IPv6 entry IPv6 ones.
// Immutable after Parse; thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "webtier/common/status.h"

namespace webtier::balancer {

// An IP address: IPv4 in the first 4 bytes when `v4`.
struct IpAddress {
  std::array<uint8_t, 16> bytes{};
  bool v4 = false;
  // Dotted quad or IPv6 text (no brackets, no zone); false otherwise. An
  // IPv4-mapped IPv6 address becomes its IPv4 address.
  static bool Parse(std::string_view text, IpAddress* out);
  // The address in 16 network-order bytes (IPv4-mapped ones folded to IPv4).
  static IpAddress FromV6Bytes(const std::array<uint8_t, 16>& bytes);
  static IpAddress FromV4Bytes(const std::array<uint8_t, 4>& bytes);
  std::string ToString() const;
};

// An address range: `bits` leading bits of `base` (host bits zero).
struct IpNetwork {
  IpAddress base;
  int bits = 0;
  // "a.b.c.d/n", "x::/n", or one address (/32, /128). Host bits must be zero.
  static Status Parse(std::string_view text, IpNetwork* out);
  bool Contains(const IpAddress& a) const;
  bool Contains(const IpNetwork& n) const;  // n lies within this range
  std::string ToString() const;
};

class AddressPolicy {
 public:
  // The default policy: any address but the refused-by-default ranges.
  AddressPolicy() = default;
  // --member-allow: comma-separated ranges, spaces around entries ignored;
  // "" = the default. kInvalidArgument names the bad entry.
  static Status Parse(std::string_view list, AddressPolicy* out);

  // "" when `a` is allowed, else why not: "outside --member-allow",
  // "link-local address", "cloud metadata address", "unspecified address".
  std::string Refusal(const IpAddress& a) const;
  bool Allows(const IpAddress& a) const { return Refusal(a).empty(); }
  // The entries as given, normalised ("" = default).
  std::string ToString() const;

 private:
  std::vector<IpNetwork> allow_;
};

}  // namespace webtier::balancer
