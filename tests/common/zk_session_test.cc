// zk::Session against a real ZooKeeper: operations, watches, listeners,
// server down at start, and a server restart that keeps the session.
#include "webtier/common/zk_session.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <vector>

#include "webtier/testing/harness.h"

namespace webtier::zk {
namespace {

using namespace webtier::testing;

class EventLog {
 public:
  void Add(Session::Event e) {
    std::lock_guard<std::mutex> l(mu_);
    events_.push_back(e);
  }
  int Count(Session::Event e) {
    std::lock_guard<std::mutex> l(mu_);
    return static_cast<int>(std::count(events_.begin(), events_.end(), e));
  }

 private:
  std::mutex mu_;
  std::vector<Session::Event> events_;
};

TEST(ZkSession, OperationsAndOneShotWatches) {
  ZooKeeperServer zk;
  zk.Start();
  Session s({.connect = zk.connect(), .session_timeout_ms = 4000});
  EventLog events;
  s.AddListener([&](Session::Event e) { events.Add(e); });
  ASSERT_TRUE(s.Start().ok());
  ASSERT_TRUE(WaitFor([&] { return s.connected(); }, 10s));
  // Listeners hear of it just after connected() turns true.
  EXPECT_TRUE(WaitFor([&] { return events.Count(Session::Event::kSessionStarted) == 1; }, 5s));
  EXPECT_NE(s.session_id(), 0);
  EXPECT_EQ(s.ConnectedServerIp(), "127.0.0.1");

  ASSERT_TRUE(s.EnsurePath("/a/b/c").ok());
  ASSERT_TRUE(s.EnsurePath("/a/b/c").ok()) << "EnsurePath must be idempotent";

  std::atomic<int> child_fired{0};
  std::vector<std::string> children;
  ASSERT_TRUE(s.GetChildren("/a/b/c", &children, [&] { ++child_fired; }).ok());
  EXPECT_TRUE(children.empty());

  std::string created;
  ASSERT_TRUE(s.Create("/a/b/c/member_", "payload", kEphemeral | kSequence, &created).ok());
  EXPECT_EQ(created, "/a/b/c/member_0000000000");
  ASSERT_TRUE(WaitFor([&] { return child_fired == 1; }, 5s));

  std::string data;
  NodeStat st;
  std::atomic<int> data_fired{0};
  ASSERT_TRUE(s.Get(created, &data, &st, [&] { ++data_fired; }).ok());
  EXPECT_EQ(data, "payload");
  EXPECT_EQ(st.ephemeral_owner, s.session_id());
  ASSERT_TRUE(s.Set(created, "v2").ok());
  ASSERT_TRUE(WaitFor([&] { return data_fired == 1; }, 5s));
  ASSERT_TRUE(s.Set(created, "v3").ok());  // one-shot: no re-arm, no second fire
  ASSERT_TRUE(s.Create("/a/b/c/member_", "x", kEphemeral | kSequence, nullptr).ok());

  EXPECT_EQ(s.Get("/a/nope", &data).code(), ErrorCode::kNotFound);
  EXPECT_EQ(s.Create("/a", "", kPersistent, nullptr).code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(data_fired, 1);
  EXPECT_EQ(child_fired, 1);

  // An exists-watch on a missing node fires when it is created.
  std::atomic<int> exists_fired{0};
  EXPECT_EQ(s.Exists("/a/later", nullptr, [&] { ++exists_fired; }).code(), ErrorCode::kNotFound);
  ASSERT_TRUE(s.Create("/a/later", "", kPersistent, nullptr).ok());
  ASSERT_TRUE(WaitFor([&] { return exists_fired == 1; }, 5s));
}

TEST(ZkSession, GetManyAnswersInOrderAndArmsEachWatch) {
  ZooKeeperServer zk;
  zk.Start();
  Session s({.connect = zk.connect(), .session_timeout_ms = 4000});
  ASSERT_TRUE(s.Start().ok());
  ASSERT_TRUE(WaitFor([&] { return s.connected(); }, 10s));
  ASSERT_TRUE(s.EnsurePath("/many").ok());
  std::vector<std::string> paths;
  for (int i = 0; i < 500; ++i) {
    paths.push_back("/many/n" + std::to_string(i));
    ASSERT_TRUE(s.Create(paths.back(), "v" + std::to_string(i), kPersistent, nullptr).ok());
  }
  paths.push_back("/many/absent");
  std::atomic<int> fired{0};
  std::vector<Session::Watch> watches(paths.size(), [&] { ++fired; });
  std::vector<GetResult> got = s.GetMany(paths, watches);
  ASSERT_EQ(got.size(), paths.size());
  for (int i = 0; i < 500; ++i) {
    ASSERT_TRUE(got[static_cast<size_t>(i)].status.ok()) << got[static_cast<size_t>(i)].status.ToString();
    EXPECT_EQ(got[static_cast<size_t>(i)].data, "v" + std::to_string(i));
  }
  EXPECT_EQ(got.back().status.code(), ErrorCode::kNotFound);
  ASSERT_TRUE(s.Set("/many/n7", "changed").ok());
  ASSERT_TRUE(s.Delete("/many/n8").ok());
  ASSERT_TRUE(WaitFor([&] { return fired == 2; }, 5s));
  ASSERT_TRUE(s.Create("/many/absent", "", kPersistent, nullptr).ok());  // no watch was left on a missing node
  ASSERT_TRUE(s.Set("/many/n7", "again").ok());                          // and watches are one-shot
  std::string data;
  ASSERT_TRUE(s.Get("/many/n7", &data).ok());
  EXPECT_EQ(fired, 2);
}

TEST(ZkSession, LargeDataIsReadWhole) {
  ZooKeeperServer zk;
  zk.Start();
  Session s({.connect = zk.connect(), .session_timeout_ms = 4000});
  ASSERT_TRUE(s.Start().ok());
  ASSERT_TRUE(WaitFor([&] { return s.connected(); }, 10s));
  std::string big(200 * 1024, 'x');
  ASSERT_TRUE(s.Create("/big", big, kPersistent, nullptr).ok());
  std::string data;
  ASSERT_TRUE(s.Get("/big", &data).ok());
  EXPECT_EQ(data.size(), big.size());
}

TEST(ZkSession, ServerDownAtStartIsNotAnErrorAndConnectsLater) {
  ZooKeeperServer zk;
  Session s({.connect = zk.connect(), .session_timeout_ms = 4000});
  EventLog events;
  s.AddListener([&](Session::Event e) { events.Add(e); });
  ASSERT_TRUE(s.Start().ok());
  EXPECT_FALSE(s.connected());
  EXPECT_EQ(s.Create("/x", "", kPersistent, nullptr).code(), ErrorCode::kConnectionLoss);
  zk.Start();
  ASSERT_TRUE(WaitFor([&] { return s.connected(); }, 20s));
  EXPECT_TRUE(WaitFor([&] { return events.Count(Session::Event::kSessionStarted) == 1; }, 5s));
}

TEST(ZkSession, ServerRestartKeepsSessionEphemeralsAndWatches) {
  ZooKeeperServer zk;
  zk.Start();
  Session s({.connect = zk.connect(), .session_timeout_ms = 6000});
  EventLog events;
  s.AddListener([&](Session::Event e) { events.Add(e); });
  ASSERT_TRUE(s.Start().ok());
  ASSERT_TRUE(WaitFor([&] { return s.connected(); }, 10s));
  const int64_t sid = s.session_id();
  std::string eph;
  ASSERT_TRUE(s.Create("/eph", "me", kEphemeral, &eph).ok());
  std::atomic<int> fired{0};
  ASSERT_TRUE(s.Exists("/eph", nullptr, [&] { ++fired; }).ok());

  zk.Stop();
  ASSERT_TRUE(WaitFor([&] { return events.Count(Session::Event::kDisconnected) == 1; }, 10s));
  EXPECT_FALSE(s.connected());
  zk.Start();
  ASSERT_TRUE(WaitFor([&] { return s.connected(); }, 20s));
  // Listeners hear of it just after connected() turns true.
  EXPECT_TRUE(WaitFor([&] { return events.Count(Session::Event::kReconnected) == 1; }, 5s));
  EXPECT_EQ(events.Count(Session::Event::kSessionStarted), 1);
  EXPECT_EQ(events.Count(Session::Event::kExpired), 0);
  EXPECT_EQ(s.session_id(), sid);
  NodeStat st;
  ASSERT_TRUE(s.Exists("/eph", &st).ok());
  EXPECT_EQ(st.ephemeral_owner, sid);
  // The watch set before the restart is still armed.
  ASSERT_TRUE(s.Delete("/eph").ok());
  ASSERT_TRUE(WaitFor([&] { return fired == 1; }, 5s));
}

TEST(ZkSession, CloseDeletesEphemeralsAtOnce) {
  ZooKeeperServer zk;
  zk.Start();
  Session observer({.connect = zk.connect(), .session_timeout_ms = 4000});
  ASSERT_TRUE(observer.Start().ok());
  {
    Session s({.connect = zk.connect(), .session_timeout_ms = 20000});
    ASSERT_TRUE(s.Start().ok());
    ASSERT_TRUE(WaitFor([&] { return s.connected(); }, 10s));
    ASSERT_TRUE(s.Create("/gone", "", kEphemeral, nullptr).ok());
  }
  ASSERT_TRUE(WaitFor([&] { return observer.connected(); }, 10s));
  EXPECT_TRUE(WaitFor([&] { return observer.Exists("/gone").code() == ErrorCode::kNotFound; }, 2s));
}

TEST(ZkSession, BadConnectStringFailsFast) {
  Session s({.connect = "", .session_timeout_ms = 4000});
  EXPECT_EQ(s.Start().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace webtier::zk
