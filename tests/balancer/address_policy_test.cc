// --member-allow: CIDR parsing, matching, and the ranges refused by default.
#include "webtier/balancer/membership/address_policy.h"

#include <gtest/gtest.h>

#include <string>

namespace webtier::balancer {
namespace {

IpAddress Ip(const std::string& text) {
  IpAddress a;
  EXPECT_TRUE(IpAddress::Parse(text, &a)) << text;
  return a;
}

AddressPolicy Policy(const std::string& list) {
  AddressPolicy p;
  Status s = AddressPolicy::Parse(list, &p);
  EXPECT_TRUE(s.ok()) << list << ": " << s.ToString();
  return p;
}

TEST(AddressPolicy, RangesParseAndMatchTheirAddressesOnly) {
  IpNetwork n;
  ASSERT_TRUE(IpNetwork::Parse("10.0.0.0/8", &n).ok());
  EXPECT_TRUE(n.Contains(Ip("10.255.1.2")));
  EXPECT_FALSE(n.Contains(Ip("11.0.0.1")));
  EXPECT_FALSE(n.Contains(Ip("::a00:1"))) << "an IPv4 range matches IPv4 addresses only";
  ASSERT_TRUE(IpNetwork::Parse("10.1.2.3", &n).ok());
  EXPECT_EQ(n.bits, 32);
  ASSERT_TRUE(IpNetwork::Parse("fd00::/8", &n).ok());
  EXPECT_TRUE(n.Contains(Ip("fd12::1")));
  EXPECT_FALSE(n.Contains(Ip("fe80::1")));
  ASSERT_TRUE(IpNetwork::Parse("192.168.0.0/17", &n).ok());
  EXPECT_TRUE(n.Contains(Ip("192.168.127.255")));
  EXPECT_FALSE(n.Contains(Ip("192.168.128.0")));
  ASSERT_TRUE(IpNetwork::Parse("0.0.0.0/0", &n).ok());
  EXPECT_TRUE(n.Contains(Ip("8.8.8.8")));
  // A mapped IPv6 range is the IPv4 range it carries.
  ASSERT_TRUE(IpNetwork::Parse("::ffff:10.0.0.0/104", &n).ok());
  EXPECT_TRUE(n.base.v4);
  EXPECT_EQ(n.ToString(), "10.0.0.0/8");
}

TEST(AddressPolicy, BadEntriesAreRefusedWithTheEntryNamed) {
  for (const char* bad : {"10.0.0.0/33", "fd00::/129", "10.0.0.1/8", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/8x",
                          "10.0.0", "example.com", "10.0.0.0/8,,10.1.0.0/16", "[::1]", "fe80::1%eth0", ",",
                          "::ffff:10.0.0.0/8", "1.2.3.4/0008"}) {
    AddressPolicy p;
    Status s = AddressPolicy::Parse(bad, &p);
    EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument) << bad;
  }
  AddressPolicy p;
  Status s = AddressPolicy::Parse("10.0.0.1/8", &p);
  EXPECT_NE(s.message().find("10.0.0.0/8"), std::string::npos) << "suggests the range: " << s.message();
}

TEST(AddressPolicy, EmptyListAllowsAnyAddressButTheRefusedRanges) {
  AddressPolicy p = Policy("");
  EXPECT_TRUE(p.Allows(Ip("127.0.0.1")));
  EXPECT_TRUE(p.Allows(Ip("10.1.2.3")));
  EXPECT_TRUE(p.Allows(Ip("2001:db8::1")));
  EXPECT_TRUE(p.Allows(Ip("::1")));
  EXPECT_EQ(p.Refusal(Ip("169.254.169.254")), "cloud metadata address");
  EXPECT_EQ(p.Refusal(Ip("fd00:ec2::254")), "cloud metadata address");
  EXPECT_EQ(p.Refusal(Ip("::ffff:169.254.169.254")), "cloud metadata address") << "mapped form folded";
  EXPECT_EQ(p.Refusal(Ip("169.254.1.1")), "link-local address");
  EXPECT_EQ(p.Refusal(Ip("fe80::1")), "link-local address");
  EXPECT_EQ(p.Refusal(Ip("febf::1")), "link-local address");
  EXPECT_TRUE(p.Allows(Ip("fec0::1")));
  EXPECT_EQ(p.Refusal(Ip("0.0.0.0")), "unspecified address");
  EXPECT_EQ(p.Refusal(Ip("0.1.2.3")), "unspecified address");
  EXPECT_EQ(p.Refusal(Ip("::")), "unspecified address");
  EXPECT_EQ(p.Refusal(Ip("::ffff:0.0.0.0")), "unspecified address");
  EXPECT_EQ(Policy("  ").ToString(), "");
}

TEST(AddressPolicy, ListAllowsItsRangesAndARefusedRangeOnlyWhenNamedWithinIt) {
  AddressPolicy p = Policy("10.0.0.0/8, 2001:db8::/32 ,127.0.0.1");
  EXPECT_EQ(p.ToString(), "10.0.0.0/8,2001:db8::/32,127.0.0.1/32");
  EXPECT_TRUE(p.Allows(Ip("10.9.8.7")));
  EXPECT_TRUE(p.Allows(Ip("::ffff:10.9.8.7")));
  EXPECT_TRUE(p.Allows(Ip("2001:db8:1::5")));
  EXPECT_TRUE(p.Allows(Ip("127.0.0.1")));
  EXPECT_EQ(p.Refusal(Ip("127.0.0.2")), "outside --member-allow");
  EXPECT_EQ(p.Refusal(Ip("192.168.1.1")), "outside --member-allow");
  EXPECT_EQ(p.Refusal(Ip("169.254.169.254")), "cloud metadata address");

  // Everything does not mean the refused ranges.
  AddressPolicy all = Policy("0.0.0.0/0,::/0");
  EXPECT_TRUE(all.Allows(Ip("8.8.8.8")));
  EXPECT_TRUE(all.Allows(Ip("2001:db8::1")));
  EXPECT_FALSE(all.Allows(Ip("169.254.1.1")));
  EXPECT_FALSE(all.Allows(Ip("169.254.169.254")));
  EXPECT_FALSE(all.Allows(Ip("fe80::1")));
  EXPECT_FALSE(all.Allows(Ip("0.0.0.0")));
  EXPECT_FALSE(all.Allows(Ip("::")));

  // Naming the link-local range lets link-local members in, not the metadata address.
  AddressPolicy ll = Policy("169.254.0.0/16,fe80::/64");
  EXPECT_TRUE(ll.Allows(Ip("169.254.1.1")));
  EXPECT_TRUE(ll.Allows(Ip("fe80::1")));
  EXPECT_FALSE(ll.Allows(Ip("fe80:0:0:1::1"))) << "outside the /64 named";
  EXPECT_EQ(ll.Refusal(Ip("169.254.169.254")), "cloud metadata address");
  EXPECT_FALSE(ll.Allows(Ip("10.0.0.1")));
  // Only the metadata address itself lets it in.
  AddressPolicy md = Policy("169.254.169.254/32,fd00:ec2::254");
  EXPECT_TRUE(md.Allows(Ip("169.254.169.254")));
  EXPECT_TRUE(md.Allows(Ip("fd00:ec2::254")));
  EXPECT_FALSE(md.Allows(Ip("169.254.169.253")));
  EXPECT_TRUE(Policy("0.0.0.0/32").Allows(Ip("0.0.0.0")));
}

}  // namespace
}  // namespace webtier::balancer
