// The membership header: member names, path checks and the shared ZooKeeper flags.
#include "webtier/common/membership.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "webtier/testing/harness.h"

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
      {[](ZkOptions* o) { o->admin_acl = "digest:admin:B05meOaFZGavGA/rJPCQlodOTYU="; }, "--zk-admin-acl:"},
      {[](ZkOptions* o) {
         o->auth_file = "/x";
         o->admin_acl = "ip:10.0.0.1";
       },
       "--zk-admin-acl:"},
      {[](ZkOptions* o) {
         o->auth_file = "/x";
         o->admin_acl = "digest:admin:short=";
       },
       "--zk-admin-acl:"},
  };
  for (const auto& c : cases) {
    ZkOptions o;
    c.mutate(&o);
    Status s = ValidateZkOptions(o);
    EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument) << c.flag;
    EXPECT_EQ(s.message().rfind(c.flag, 0), 0u) << s.message();
  }
}

TEST(Membership, CredentialIsOneUserColonPasswordLine) {
  EXPECT_TRUE(ValidateCredential("webtier:s3cret").ok());
  EXPECT_TRUE(ValidateCredential("webtier:pass:with:colons").ok());
  for (const char* bad : {"", "webtier", "webtier:", ":pw", "web tier:pw", "webtier:pw with space", "webtier:pw\nmore",
                          "a,b:pw"}) {
    EXPECT_EQ(ValidateCredential(bad).code(), ErrorCode::kInvalidArgument) << bad;
  }
  EXPECT_FALSE(ValidateCredential("u:" + std::string(2000, 'x')).ok());
}

// --zk-auth-file is read by FinalizeZkOptions; its errors name the flag and
// never echo the file's content.
TEST(Membership, AuthFileIsReadAtFinalizeAndItsContentNeverShown) {
  testing::TempDir dir;
  const std::string good = dir.path() + "/good", crlf = dir.path() + "/crlf", bad = dir.path() + "/bad",
                    two = dir.path() + "/two";
  std::ofstream(good) << "webtier:Sup3r-secret\n";
  std::ofstream(crlf) << "webtier:Sup3r-secret\r\n";
  std::ofstream(bad) << "Sup3r-secret-no-user\n";
  std::ofstream(two) << "webtier:Sup3r-secret\nsecond:line\n";

  ZkOptions o;
  ASSERT_TRUE(FinalizeZkOptions(&o).ok());
  EXPECT_EQ(o.credential, "") << "no file: anonymous";
  for (const std::string& file : {good, crlf}) {
    o.auth_file = file;
    ASSERT_TRUE(FinalizeZkOptions(&o).ok()) << file;
    EXPECT_EQ(o.credential, "webtier:Sup3r-secret") << file;
  }
  for (const std::string& file : {bad, two, dir.path() + "/missing", dir.path()}) {
    o.auth_file = file;
    Status s = FinalizeZkOptions(&o);
    EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument) << file;
    EXPECT_EQ(s.message().rfind("--zk-auth-file:", 0), 0u) << s.message();
    EXPECT_EQ(s.message().find("Sup3r"), std::string::npos) << s.message();
  }

  o.auth_file = good;
  o.admin_acl = "digest:admin:B05meOaFZGavGA/rJPCQlodOTYU=,digest:ops:AAAAAAAAAAAAAAAAAAAAAAAAAAA=";
  ASSERT_TRUE(FinalizeZkOptions(&o).ok());
  EXPECT_EQ(o.admin_digests,
            (std::vector<std::string>{"admin:B05meOaFZGavGA/rJPCQlodOTYU=", "ops:AAAAAAAAAAAAAAAAAAAAAAAAAAA="}));
  zk::Session::Options so = SessionOptions(o, "zk");
  EXPECT_EQ(so.digest_auth, "webtier:Sup3r-secret");
  EXPECT_EQ(so.admin_digests, o.admin_digests);
  EXPECT_EQ(so.audit_path, o.path);
}

}  // namespace
}  // namespace webtier::membership
