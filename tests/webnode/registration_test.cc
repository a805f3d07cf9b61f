// MemberRegistration against zk::FakeClient: the registration rules (one
// znode per session, kept across connection loss, re-created after expiry or
// deletion, gone after Deregister) in milliseconds, without a ZooKeeper.
#include "webtier/webnode/registration.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include "webtier/common/membership.h"
#include "webtier/testing/fake_zk_client.h"
#include "webtier/testing/harness.h"

namespace webtier::webnode {
namespace {

using namespace std::chrono_literals;
using testing::WaitFor;

constexpr const char* kPath = "/webtier/nodes";

class RegistrationTest : public ::testing::Test {
 protected:
  RegistrationTest() : registration_(zk_, kPath, Member(), registry_) {
    registration_.SetRetryDelayForTest(1ms);
  }
  // Stops the registration thread, then lets every queued event run while
  // the registration it calls into is still alive.
  ~RegistrationTest() override {
    registration_.Deregister().IgnoreError();  // the tests check it where it matters
    zk_.WaitIdleForTest();
  }

  static serverset::Member Member() {
    serverset::Member m;
    m.id = "node-a";
    m.host = "10.0.0.1";
    m.port = 8080;
    return m;
  }

  // Starts the session and the registration, and waits for the first znode.
  std::string Register() {
    zk_.StartSession();
    registration_.Start();
    EXPECT_TRUE(WaitFor([&] { return registration_.registered(); }, 5s));
    return registration_.znode();
  }

  // Waits until the registration holds a znode other than `old`.
  std::string WaitForNewZnode(const std::string& old) {
    EXPECT_TRUE(WaitFor([&] { return registration_.registered() && registration_.znode() != old; }, 5s));
    return registration_.znode();
  }

  std::vector<std::string> Children() { return zk_.ChildrenForTest(kPath); }

  zk::FakeClient zk_;
  prometheus::Registry registry_;
  MemberRegistration registration_;
};

TEST_F(RegistrationTest, FirstRegistrationCreatesOneEphemeralSequentialServersetMember) {
  const std::string znode = Register();
  ASSERT_EQ(Children().size(), 1u);
  EXPECT_EQ(std::string(kPath) + "/" + Children()[0], znode);
  EXPECT_TRUE(membership::IsMemberName(Children()[0]));
  EXPECT_EQ(zk_.StatForTest(znode)->ephemeral_owner, zk_.session_id());
  serverset::Member decoded;
  ASSERT_TRUE(serverset::Decode(*zk_.DataForTest(znode), &decoded).ok());
  EXPECT_EQ(decoded, Member());
}

TEST_F(RegistrationTest, CreateAnsweringConnectionLossAfterSucceedingLeavesNoDuplicate) {
  zk_.FailNextCreateAfterApplyingForTest();
  const std::string znode = Register();
  ASSERT_EQ(Children().size(), 1u);
  EXPECT_EQ(std::string(kPath) + "/" + Children()[0], znode);
}

TEST_F(RegistrationTest, ConnectionLossAndReconnectKeepTheSameZnode) {
  const std::string znode = Register();
  zk_.DropConnection();
  zk_.WaitIdleForTest();
  EXPECT_TRUE(registration_.registered());  // the session, and our znode, may well survive
  zk_.Reconnect();
  zk_.WaitIdleForTest();
  ASSERT_TRUE(WaitFor([&] { return registration_.registered(); }, 5s));
  EXPECT_EQ(registration_.znode(), znode);
  EXPECT_EQ(Children().size(), 1u);
}

TEST_F(RegistrationTest, SessionExpiryRegistersANewZnodeUnderTheNewSession) {
  const std::string first = Register();
  const int64_t old_session = zk_.session_id();
  zk_.ExpireSession();
  const std::string second = WaitForNewZnode(first);
  EXPECT_FALSE(zk_.DataForTest(first).has_value());
  ASSERT_EQ(Children().size(), 1u);
  EXPECT_NE(zk_.session_id(), old_session);
  EXPECT_EQ(zk_.StatForTest(second)->ephemeral_owner, zk_.session_id());
}

TEST_F(RegistrationTest, ZnodeDeletedBySomeoneElseIsRecreated) {
  const std::string first = Register();
  ASSERT_TRUE(zk_.DeleteAsOther(first).ok());
  WaitForNewZnode(first);
  EXPECT_EQ(Children().size(), 1u);
}

TEST_F(RegistrationTest, DeregisterDeletesTheZnodeAndNeverRegistersAgain) {
  Register();
  ASSERT_TRUE(registration_.Deregister().ok());
  EXPECT_FALSE(registration_.registered());
  EXPECT_TRUE(Children().empty());
  zk_.ExpireSession();  // would re-register if anything still listened
  zk_.WaitIdleForTest();
  EXPECT_TRUE(Children().empty());
  EXPECT_TRUE(registration_.Deregister().ok());  // idempotent
}

TEST_F(RegistrationTest, NothingIsWrittenWhileDisconnectedAndTheZnodeComesWithTheConnection) {
  registration_.Start();
  EXPECT_FALSE(registration_.registered());
  EXPECT_EQ(zk_.operations_for_test(), 0);
  zk_.StartSession();
  ASSERT_TRUE(WaitFor([&] { return registration_.registered(); }, 5s));
  EXPECT_EQ(Children().size(), 1u);
}

}  // namespace
}  // namespace webtier::webnode
