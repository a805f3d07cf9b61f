// zk::Session with a digest credential against a real ZooKeeper: what the
// znodes it creates let other clients do (anonymous ones read, nobody else
// writes), the admin identity, and the audit of paths created open before.
#include <gtest/gtest.h>

#include <thread>

#include "webtier/common/zk_session.h"
#include "webtier/testing/harness.h"

namespace webtier::zk {
namespace {

using namespace webtier::testing;

constexpr char kPath[] = "/webtier/nodes";
// base64(sha1("admin:adminpw")), as `--zk-admin-acl digest:admin:<this>` takes it.
constexpr char kAdminDigest[] = "admin:B05meOaFZGavGA/rJPCQlodOTYU=";

std::unique_ptr<Session> Connect(const std::string& connect, std::string credential = "",
                                 std::vector<std::string> admins = {}, std::string audit = "") {
  auto s = std::make_unique<Session>(Session::Options{.connect = connect,
                                                      .session_timeout_ms = 4000,
                                                      .component = "zk",
                                                      .digest_auth = std::move(credential),
                                                      .admin_digests = std::move(admins),
                                                      .audit_path = std::move(audit)});
  if (!s->Start().ok() || !WaitFor([&] { return s->connected(); }, 20s))
    throw std::runtime_error("could not connect to ZooKeeper");
  return s;
}

TEST(ZkAcl, WithACredentialOthersReadButCannotAddChangeOrDeleteMembers) {
  ZooKeeperServer zk;
  zk.Start();
  auto owner = Connect(zk.connect(), "webtier:s3cret", {kAdminDigest});
  ASSERT_TRUE(owner->EnsurePath(kPath).ok());
  std::string member;
  ASSERT_TRUE(owner->Create(std::string(kPath) + "/member_", "record", kEphemeral | kSequence, &member).ok());

  // Anonymous: reads the membership (as the balancer and Prometheus do)...
  auto anon = Connect(zk.connect());
  std::vector<std::string> children;
  ASSERT_TRUE(anon->GetChildren(kPath, &children).ok());
  EXPECT_EQ(children.size(), 1u);
  std::string data;
  ASSERT_TRUE(anon->Get(member, &data).ok());
  EXPECT_EQ(data, "record");
  // ...but cannot add a member, change or delete one, or touch the parents.
  Status add = anon->Create(std::string(kPath) + "/member_", "evil", kEphemeral | kSequence, nullptr);
  EXPECT_FALSE(add.ok());
  EXPECT_NE(add.message().find("not authenticated"), std::string::npos) << add.ToString();
  EXPECT_FALSE(anon->Set(member, "evil").ok());
  EXPECT_FALSE(anon->Delete(member).ok());
  EXPECT_FALSE(anon->Create("/webtier/other", "", kPersistent, nullptr).ok());
  EXPECT_FALSE(anon->Set(kPath, "evil").ok());

  // A wrong password is another identity: no more rights than anonymous.
  auto wrong = Connect(zk.connect(), "webtier:wrong");
  EXPECT_FALSE(wrong->Delete(member).ok());
  EXPECT_FALSE(wrong->Set(member, "evil").ok());
  EXPECT_FALSE(wrong->Create(std::string(kPath) + "/member_", "evil", kEphemeral | kSequence, nullptr).ok());

  ASSERT_TRUE(anon->GetChildren(kPath, &children).ok());
  EXPECT_EQ(children.size(), 1u) << "nothing was added";
  ASSERT_TRUE(anon->Get(member, &data).ok());
  EXPECT_EQ(data, "record") << "nothing was changed";

  // Another node with the same credential registers beside it.
  auto peer = Connect(zk.connect(), "webtier:s3cret");
  EXPECT_TRUE(peer->Create(std::string(kPath) + "/member_", "peer", kEphemeral | kSequence, nullptr).ok());
  // The admin identity of --zk-admin-acl may repair or remove members.
  auto admin = Connect(zk.connect(), "admin:adminpw");
  EXPECT_TRUE(admin->Set(member, "fixed").ok());
  EXPECT_TRUE(admin->Delete(member).ok());
}

TEST(ZkAcl, WithoutACredentialZnodesStayOpenAsBefore) {
  ZooKeeperServer zk;
  zk.Start();
  auto a = Connect(zk.connect());
  ASSERT_TRUE(a->EnsurePath(kPath).ok());
  std::string member;
  ASSERT_TRUE(a->Create(std::string(kPath) + "/member_", "x", kEphemeral | kSequence, &member).ok());
  auto b = Connect(zk.connect());
  EXPECT_TRUE(b->Set(member, "y").ok());
  EXPECT_TRUE(b->Delete(member).ok());
}

TEST(ZkAcl, PathsCreatedOpenEarlierAreReportedAndLeftAlone) {
  ZooKeeperServer zk;
  zk.Start();
  auto old = Connect(zk.connect());
  ASSERT_TRUE(old->EnsurePath(kPath).ok());  // as a tier without credential left it

  ::testing::internal::CaptureStderr();
  auto secured = Connect(zk.connect(), "webtier:s3cret", {}, kPath);
  // The audit runs on the session's event thread right after it starts.
  std::string created;
  ASSERT_TRUE(secured->Create(std::string(kPath) + "/member_", "x", kEphemeral | kSequence, &created).ok());
  ASSERT_TRUE(WaitFor([&] { return secured->Exists(created).ok(); }, 5s));
  std::this_thread::sleep_for(500ms);
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("znode=/webtier/nodes"), std::string::npos) << log;
  EXPECT_NE(log.find("znode=/webtier\n"), std::string::npos) << log;
  EXPECT_EQ(log.find("s3cret"), std::string::npos) << "the credential is never logged";
  // Not fixed silently: the parent is as open as it was.
  EXPECT_TRUE(old->Create(std::string(kPath) + "/other", "", kEphemeral, nullptr).ok());
}

TEST(ZkAcl, FirstCreateAfterConnectingIsAlreadyAuthenticated) {
  // The creator ACL needs an authenticated session: a create made before the
  // credential was sent would fail, so this passing shows it goes first.
  ZooKeeperServer zk;
  zk.Start();
  for (int i = 0; i < 5; ++i) {
    auto s = Connect(zk.connect(), "webtier:s3cret");
    EXPECT_TRUE(s->Create("/first" + std::to_string(i), "", kPersistent, nullptr).ok());
  }
}

}  // namespace
}  // namespace webtier::zk
