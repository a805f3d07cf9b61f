// The membership header: member names, path checks and the shared ZooKeeper flags.
#include "webtier/common/membership.h"

#include <gtest/gtest.h>

namespace webtier::membership {
namespace {

TEST(Membership, MemberNamesCarryThePrefix) {
  EXPECT_TRUE(IsMemberName("member_0000000007"));
  EXPECT_FALSE(IsMemberName("lock_0000000007"));
  EXPECT_FALSE(IsMemberName("member"));
}

TEST(Membership, PathMustBeAbsoluteWithoutTrailingOrEmptySegments) {
  EXPECT_TRUE(ValidatePath(kDefaultPath).ok());
  EXPECT_TRUE(ValidatePath("/a").ok());
  for (const char* bad : {"", "/", "relative", "webtier/nodes", "/trailing/", "/a//b"}) {
    EXPECT_EQ(ValidatePath(bad).code(), ErrorCode::kInvalidArgument) << bad;
  }
}

TEST(Membership, ZkFlagsHaveTheProgramsDefaultsAndParse) {
  ZkOptions options;
  CLI::App app{"test", "testprog"};
  AddZkFlags(app, &options);
  EXPECT_EQ(options.connect, "127.0.0.1:2181");
  EXPECT_EQ(options.path, "/webtier/nodes");
  EXPECT_EQ(options.session_timeout_ms, 6000);
  EXPECT_TRUE(ValidateZkOptions(options).ok());
  app.parse(std::vector<std::string>{"--zk-session-timeout-ms=9000", "--zk-path=/x/y", "--zk=h1:1,h2:2"});
  EXPECT_EQ(options.connect, "h1:1,h2:2");
  EXPECT_EQ(options.path, "/x/y");
  EXPECT_EQ(options.session_timeout_ms, 9000);
}

TEST(Membership, EachBadZkOptionNamesItsFlag) {
  struct Case {
    void (*mutate)(ZkOptions*);
    const char* flag;
  } cases[] = {
      {[](ZkOptions* o) { o->connect = ""; }, "--zk:"},
      {[](ZkOptions* o) { o->path = "relative"; }, "--zk-path:"},
      {[](ZkOptions* o) { o->session_timeout_ms = 999; }, "--zk-session-timeout-ms:"},
      {[](ZkOptions* o) { o->session_timeout_ms = 600001; }, "--zk-session-timeout-ms:"},
  };
  for (const auto& c : cases) {
    ZkOptions o;
    c.mutate(&o);
    Status s = ValidateZkOptions(o);
    EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument) << c.flag;
    EXPECT_EQ(s.message().rfind(c.flag, 0), 0u) << s.message();
  }
}

}  // namespace
}  // namespace webtier::membership
