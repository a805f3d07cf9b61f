// host:port parsing and address classification.
#include "webtier/common/net.h"

#include <gtest/gtest.h>

namespace webtier::net {
namespace {

TEST(ParseHostPort, AcceptsTheUsualForms) {
  HostPort hp;
  ASSERT_TRUE(ParseHostPort("0.0.0.0:8080", &hp).ok());
  EXPECT_EQ(hp, (HostPort{"0.0.0.0", 8080}));
  ASSERT_TRUE(ParseHostPort("[::1]:9000", &hp).ok());
  EXPECT_EQ(hp, (HostPort{"::1", 9000}));
  EXPECT_EQ(hp.ToString(), "[::1]:9000");
  ASSERT_TRUE(ParseHostPort(":81", &hp).ok());
  EXPECT_EQ(hp, (HostPort{"", 81}));
  ASSERT_TRUE(ParseHostPort("redis", &hp, 6379).ok());
  EXPECT_EQ(hp, (HostPort{"redis", 6379}));
}

TEST(ParseHostPort, RejectsGarbageWithAReason) {
  HostPort hp;
  for (const char* bad : {"", "host", "host:", "host:0", "host:65536", "host:80x", "::1:80", "[::1", "[::1]x"}) {
    Status s = ParseHostPort(bad, &hp);
    EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find(bad), std::string::npos) << s.message();
  }
}

TEST(ParseListenAddress, AcceptsPortZeroForAnyFreePort) {
  HostPort hp;
  ASSERT_TRUE(ParseListenAddress("127.0.0.1:0", &hp).ok());
  EXPECT_EQ(hp, (HostPort{"127.0.0.1", 0}));
  ASSERT_TRUE(ParseListenAddress("[::1]:8080", &hp).ok());
  EXPECT_EQ(hp, (HostPort{"::1", 8080}));
  for (const char* bad : {"", "host", "host:", "host:65536", "host:-1", "::1:80"}) {
    EXPECT_EQ(ParseListenAddress(bad, &hp).code(), ErrorCode::kInvalidArgument) << bad;
  }
}

TEST(Net, ClassifiesAddresses) {
  EXPECT_TRUE(IsLoopback("127.0.0.1"));
  EXPECT_TRUE(IsLoopback("127.1.2.3"));
  EXPECT_TRUE(IsLoopback("::1"));
  EXPECT_FALSE(IsLoopback("10.0.0.1"));
  EXPECT_TRUE(IsWildcard("0.0.0.0"));
  EXPECT_TRUE(IsWildcard(""));
  EXPECT_FALSE(IsWildcard("127.0.0.1"));
}

TEST(Net, LocalAddressTowardLoopbackIsLoopback) {
  EXPECT_EQ(LocalAddressToward("127.0.0.1"), "127.0.0.1");
  EXPECT_EQ(LocalAddressToward("not-an-ip"), "");
}

}  // namespace
}  // namespace webtier::net
