// MemberRegistry against zk::FakeClient: listing and reading races, invalid
// data, member changes, expiry, ZooKeeper unreachable, batching and the state
// file, in milliseconds and without a ZooKeeper.
#include "webtier/balancer/membership/member_registry.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <atomic>
#include <memory>
#include <thread>

#include "webtier/balancer/telemetry/proxy_metrics.h"
#include "webtier/balancer/membership/state_file.h"
#include "webtier/testing/fake_zk_client.h"
#include "webtier/testing/harness.h"

namespace webtier::balancer {
namespace {

using namespace std::chrono_literals;
using testing::WaitFor;

constexpr const char* kPath = "/webtier/nodes";

// The listener side: the pool as a map, and how many deltas built it.
class RecordingListener : public MembershipListener {
 public:
  void OnMembershipUpdate(const std::vector<MemberRecord>& added,
                          const std::vector<std::string>& removed) override {  // balancer::MembershipListener
    std::lock_guard l(mu_);
    for (const auto& key : removed) pool_.erase(key);
    for (const auto& rec : added) pool_[rec.key] = rec;
    ++updates_;
  }
  size_t size() const {
    std::lock_guard l(mu_);
    return pool_.size();
  }
  std::optional<MemberRecord> Find(const std::string& key) const {
    std::lock_guard l(mu_);
    auto it = pool_.find(key);
    if (it == pool_.end()) return std::nullopt;
    return it->second;
  }
  int updates() const {
    std::lock_guard l(mu_);
    return updates_;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, MemberRecord> pool_;
  int updates_ = 0;
};

std::string MemberJson(int port) {
  serverset::Member m;
  m.id = "m" + std::to_string(port);
  m.host = "127.0.0.1";
  m.port = port;
  return serverset::Encode(m);
}

std::string Key(const std::string& znode) { return znode.substr(znode.rfind('/') + 1); }

class MemberRegistryTest : public ::testing::Test {
 protected:
  MemberRegistryTest() : metrics_(prom_) { EXPECT_TRUE(zk_.CreateAsOther("/webtier", "").ok()); }

  // No event may reach a registry once it is gone: with the connection down
  // no watch is delivered, and the queue is drained first.
  ~MemberRegistryTest() override { StopRegistry(); }

  void StartRegistry(std::string state_file = "") {
    registry_ = std::make_unique<MemberRegistry>(
        zk_, MemberRegistry::Options{.path = kPath, .state_file = std::move(state_file), .state_file_interval = 1ms},
        listener_, &metrics_);
  }
  void StopRegistry() {
    zk_.DropConnection();
    zk_.WaitIdleForTest();
    registry_.reset();
  }

  // Creates a member as another client would; returns its znode name.
  std::string AddMember(int port) { return AddRaw(MemberJson(port)); }
  std::string AddRaw(const std::string& data) {
    std::string created;
    EXPECT_TRUE(zk_.CreateAsOther(std::string(kPath) + "/member_", data, zk::kEphemeral | zk::kSequence, &created).ok());
    return Key(created);
  }
  std::string Path(const std::string& key) { return std::string(kPath) + "/" + key; }

  bool WaitPool(size_t n) { return WaitFor([&] { return listener_.size() == n; }, 5s); }
  double Invalid() { return metrics_.invalid_members.Value(); }

  zk::FakeClient zk_;
  prometheus::Registry prom_;
  ProxyMetrics metrics_;
  RecordingListener listener_;
  std::unique_ptr<MemberRegistry> registry_;
};

TEST_F(MemberRegistryTest, ListsReadsAndFollowsMembersAddedChangedAndRemoved) {
  ASSERT_TRUE(zk_.CreateAsOther(kPath, "").ok());
  const std::string a = AddMember(8001), b = AddMember(8002);
  StartRegistry();
  zk_.StartSession();
  ASSERT_TRUE(WaitPool(2));
  EXPECT_TRUE(registry_->synced());
  EXPECT_EQ(registry_->source(), "zookeeper");
  EXPECT_EQ(registry_->zk_state(), "connected");

  const std::string c = AddMember(8003);
  ASSERT_TRUE(WaitPool(3));
  ASSERT_TRUE(zk_.SetAsOther(Path(a), MemberJson(9001)).ok());
  ASSERT_TRUE(WaitFor([&] { return listener_.Find(a) && listener_.Find(a)->member.port == 9001; }, 5s));
  ASSERT_TRUE(zk_.DeleteAsOther(Path(b)).ok());
  ASSERT_TRUE(WaitPool(2));
  EXPECT_FALSE(listener_.Find(b));
  EXPECT_TRUE(listener_.Find(c));
}

TEST_F(MemberRegistryTest, AllMembersPresentAtConnectionArriveAsOneUpdate) {
  ASSERT_TRUE(zk_.CreateAsOther(kPath, "").ok());
  for (int i = 0; i < 1000; ++i) AddMember(10000 + i);
  StartRegistry();
  zk_.StartSession();
  ASSERT_TRUE(WaitPool(1000));
  EXPECT_EQ(listener_.updates(), 1);
}

TEST_F(MemberRegistryTest, ChildDeletedBetweenListingAndReadIsJustAbsent) {
  ASSERT_TRUE(zk_.CreateAsOther(kPath, "").ok());
  const std::string keep = AddMember(8001), gone = AddMember(8002);
  bool deleted = false;
  zk_.SetOperationHookForTest([&](std::string_view op, const std::string& path) {
    if (op == "get" && path == Path(gone) && !deleted) {
      deleted = true;
      EXPECT_TRUE(zk_.DeleteAsOther(path).ok());
    }
  });
  StartRegistry();
  zk_.StartSession();
  ASSERT_TRUE(WaitFor([&] { return registry_->synced(); }, 5s));
  ASSERT_TRUE(WaitPool(1));
  EXPECT_TRUE(deleted);
  EXPECT_TRUE(listener_.Find(keep));
  EXPECT_EQ(Invalid(), 0);
}

TEST_F(MemberRegistryTest, InvalidDataIsIgnoredAndCountedOncePerValue) {
  ASSERT_TRUE(zk_.CreateAsOther(kPath, "").ok());
  AddMember(8001);
  const std::string bad = AddRaw("this is not json");
  StartRegistry();
  zk_.StartSession();
  ASSERT_TRUE(WaitFor([&] { return registry_->synced() && Invalid() == 1; }, 5s));
  EXPECT_EQ(listener_.size(), 1u);

  AddMember(8002);  // a re-listing does not count the same invalid member again
  ASSERT_TRUE(WaitPool(2));
  EXPECT_EQ(Invalid(), 1);

  ASSERT_TRUE(zk_.SetAsOther(Path(bad), "{garbage").ok());  // new garbage is new
  ASSERT_TRUE(WaitFor([&] { return Invalid() == 2; }, 5s));
  ASSERT_TRUE(zk_.SetAsOther(Path(bad), MemberJson(8003)).ok());  // repaired: it joins
  ASSERT_TRUE(WaitPool(3));
  EXPECT_EQ(Invalid(), 2);
}

TEST_F(MemberRegistryTest, SessionExpiryRelistsAndRearmsWatches) {
  ASSERT_TRUE(zk_.CreateAsOther(kPath, "").ok());
  const std::string a = AddMember(8001);
  StartRegistry();
  zk_.StartSession();
  ASSERT_TRUE(WaitPool(1));
  zk_.ExpireSession(/*start_new=*/false);
  zk_.WaitIdleForTest();
  EXPECT_EQ(registry_->zk_state(), "expired");
  EXPECT_EQ(listener_.size(), 1u);  // the last known pool stays

  const std::string b = AddMember(8002);  // while no session: seen by the new session's listing
  zk_.StartSession();
  ASSERT_TRUE(WaitPool(2));
  // Watches of the new session: a data change and a new child are followed.
  ASSERT_TRUE(zk_.SetAsOther(Path(a), MemberJson(9001)).ok());
  ASSERT_TRUE(WaitFor([&] { return listener_.Find(a)->member.port == 9001; }, 5s));
  AddMember(8003);
  ASSERT_TRUE(WaitPool(3));
}

TEST_F(MemberRegistryTest, ZooKeeperUnreachableKeepsTheLastPoolUntilReconnected) {
  ASSERT_TRUE(zk_.CreateAsOther(kPath, "").ok());
  const std::string a = AddMember(8001), b = AddMember(8002);
  StartRegistry();
  zk_.StartSession();
  ASSERT_TRUE(WaitPool(2));
  zk_.DropConnection();
  ASSERT_TRUE(zk_.DeleteAsOther(Path(b)).ok());  // happens while we cannot hear it
  zk_.WaitIdleForTest();
  EXPECT_EQ(registry_->zk_state(), "disconnected");
  EXPECT_EQ(metrics_.zk_connected.Value(), 0);
  EXPECT_EQ(listener_.size(), 2u);
  zk_.Reconnect();
  ASSERT_TRUE(WaitPool(1));
  EXPECT_TRUE(listener_.Find(a));
  EXPECT_EQ(metrics_.zk_connected.Value(), 1);
}

TEST_F(MemberRegistryTest, PathSuddenlyEmptyKeepsTheLastPool) {
  ASSERT_TRUE(zk_.CreateAsOther(kPath, "").ok());
  const std::string a = AddMember(8001), b = AddMember(8002);
  StartRegistry();
  zk_.StartSession();
  ASSERT_TRUE(WaitPool(2));
  zk_.DropConnection();
  ASSERT_TRUE(zk_.DeleteAsOther(Path(a)).ok());  // both gone at once, as the reconnection's listing sees it
  ASSERT_TRUE(zk_.DeleteAsOther(Path(b)).ok());
  zk_.WaitIdleForTest();
  const int64_t ops = zk_.operations_for_test();
  zk_.Reconnect();
  // The reconnection's listing was answered (empty), then applied a moment later.
  ASSERT_TRUE(WaitFor([&] { return zk_.operations_for_test() > ops; }, 5s));
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(listener_.size(), 2u) << "an emptied path keeps the last pool";
  const std::string c = AddMember(8003);  // members appearing again replace it
  ASSERT_TRUE(WaitPool(1));
  EXPECT_TRUE(listener_.Find(c));
}

// A ZooKeeper that stalls past the session timeout expires the members'
// sessions one after another: listings see the pool shrink to one member,
// then to none, while every member still serves and re-registers a moment
// later. The last one stays; members registering again replace it.
TEST_F(MemberRegistryTest, MembersLeavingOneByOneLeaveTheLastInThePool) {
  ASSERT_TRUE(zk_.CreateAsOther(kPath, "").ok());
  const std::string a = AddMember(8001), b = AddMember(8002), c = AddMember(8003);
  StartRegistry();
  zk_.StartSession();
  ASSERT_TRUE(WaitPool(3));
  ASSERT_TRUE(zk_.DeleteAsOther(Path(a)).ok());
  ASSERT_TRUE(WaitPool(2));
  ASSERT_TRUE(zk_.DeleteAsOther(Path(b)).ok());
  ASSERT_TRUE(WaitPool(1));
  EXPECT_TRUE(listener_.Find(c));
  zk_.WaitIdleForTest();
  const int64_t ops = zk_.operations_for_test();
  ASSERT_TRUE(zk_.DeleteAsOther(Path(c)).ok());
  // The deletion was seen and listed (an empty path), and the pool kept.
  ASSERT_TRUE(WaitFor([&] { return zk_.operations_for_test() > ops; }, 5s));
  zk_.WaitIdleForTest();
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(listener_.size(), 1u) << "the last member stays";
  EXPECT_TRUE(listener_.Find(c));
  const std::string d = AddMember(8004);
  ASSERT_TRUE(WaitFor([&] { return listener_.Find(d) && !listener_.Find(c); }, 5s));
  EXPECT_EQ(listener_.size(), 1u);
}

TEST_F(MemberRegistryTest, APathEmptiedWhileAMemberIsReadKeepsTheLastPool) {
  // The emptying is seen first through a member's data watch, not through a
  // listing (as when a reconnection delivers the deletions' watches before
  // the child watch): that batch finds the member gone, and it alone must not
  // shrink the pool member by member below the rule that keeps it.
  ASSERT_TRUE(zk_.CreateAsOther(kPath, "").ok());
  const std::string a = AddMember(8001), b = AddMember(8002);
  StartRegistry();
  zk_.StartSession();
  ASSERT_TRUE(WaitPool(2));
  zk_.WaitIdleForTest();
  struct Counts {
    std::atomic<bool> wiped = false;
    std::atomic<int> listings = 0;
  };
  auto counts = std::make_shared<Counts>();  // the hook may outlive a failed assertion
  zk_.SetOperationHookForTest([this, counts, a, b](std::string_view op, const std::string& path) {
    if (op == "get" && path == Path(a) && !counts->wiped.exchange(true)) {
      EXPECT_TRUE(zk_.DeleteAsOther(Path(a)).ok());
      EXPECT_TRUE(zk_.DeleteAsOther(Path(b)).ok());
    }
    if (op == "get_children" && counts->wiped) ++counts->listings;
  });
  ASSERT_TRUE(zk_.SetAsOther(Path(a), MemberJson(9001)).ok());  // its data watch: a batch reading only it
  ASSERT_TRUE(WaitFor([&] { return counts->listings >= 1; }, 5s));
  std::this_thread::sleep_for(100ms);  // the listing's batch applied (a wrong one would empty the pool)
  EXPECT_EQ(listener_.size(), 2u) << "an emptied path keeps the last pool";
  const std::string c = AddMember(8003);
  ASSERT_TRUE(WaitPool(1));
  EXPECT_TRUE(listener_.Find(c));
}

TEST_F(MemberRegistryTest, MissingPathIsAnEmptyPoolUntilItAppears) {
  StartRegistry();
  zk_.StartSession();
  ASSERT_TRUE(WaitFor([&] { return registry_->synced(); }, 5s));
  EXPECT_EQ(listener_.size(), 0u);
  ASSERT_TRUE(zk_.CreateAsOther(kPath, "").ok());
  AddMember(8001);
  ASSERT_TRUE(WaitPool(1));
}

TEST_F(MemberRegistryTest, StateFileIsWrittenAndSeedsAPoolWhenZooKeeperIsUnreachable) {
  testing::TempDir dir("registry-state");
  const std::string state = dir.path() + "/pool.json";
  ASSERT_TRUE(zk_.CreateAsOther(kPath, "").ok());
  const std::string a = AddMember(8001), b = AddMember(8002);
  StartRegistry(state);
  zk_.StartSession();
  ASSERT_TRUE(WaitPool(2));
  registry_->FlushStateFileForTest();
  std::vector<MemberRecord> saved;
  ASSERT_TRUE(LoadStateFile(state, &saved).ok());
  ASSERT_EQ(saved.size(), 2u);
  EXPECT_EQ(saved[0].key, a);
  EXPECT_EQ(saved[1].key, b);

  // A new registry whose ZooKeeper never answers starts from the file.
  StopRegistry();
  RecordingListener fresh;
  MemberRegistry offline(zk_, {.path = kPath, .state_file = state}, fresh, nullptr);
  ASSERT_TRUE(offline.LoadStateFile().ok());
  EXPECT_EQ(fresh.size(), 2u);
  EXPECT_EQ(offline.source(), "state_file");
  EXPECT_FALSE(offline.synced());
}

TEST_F(MemberRegistryTest, ShutdownWritesTheLastPool) {
  testing::TempDir dir("registry-state");
  const std::string state = dir.path() + "/pool.json";
  ASSERT_TRUE(zk_.CreateAsOther(kPath, "").ok());
  for (int i = 0; i < 50; ++i) AddMember(8000 + i);
  registry_ = std::make_unique<MemberRegistry>(
      zk_, MemberRegistry::Options{.path = kPath, .state_file = state, .state_file_interval = 1h}, listener_, &metrics_);
  zk_.StartSession();
  ASSERT_TRUE(WaitPool(50));
  AddMember(9000);  // written within the hour only because the registry goes
  ASSERT_TRUE(WaitPool(51));
  StopRegistry();
  std::vector<MemberRecord> saved;
  ASSERT_TRUE(LoadStateFile(state, &saved).ok());
  EXPECT_EQ(saved.size(), 51u);
}

}  // namespace
}  // namespace webtier::balancer
