// RedisStore against a real redis-server: commands, locks (and the FillLock
// taken with them), outages, reconnects.
#include "webtier/cache/redis_store.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "webtier/cache/cache_key.h"
#include "webtier/cache/fill_lock.h"
#include "webtier/testing/harness.h"

namespace webtier::cache {
namespace {

using namespace std::chrono_literals;
using webtier::testing::RedisServer;

// hiredis writes with write(2): a server that died makes it raise SIGPIPE,
// which every program using RedisStore ignores (the webnode does in main).
const bool kSigpipeIgnored = [] {
  ::signal(SIGPIPE, SIG_IGN);
  return true;
}();

RedisOptions OptionsFor(const RedisServer& redis, std::string password = "") {
  RedisOptions o;
  EXPECT_TRUE(net::ParseHostPort(redis.address(), &o.address).ok());
  o.password = std::move(password);
  return o;
}

TEST(RedisStoreTest, GetPutDeleteAreBinarySafe) {
  RedisServer redis;
  redis.Start();
  RedisStore store(OptionsFor(redis));
  std::string value;
  EXPECT_EQ(store.Get("k", &value).code(), ErrorCode::kNotFound);
  const std::string bytes("x\0y\r\n\xff", 6);
  ASSERT_TRUE(store.Put("k", bytes, 10s).ok());
  ASSERT_TRUE(store.Get("k", &value).ok());
  EXPECT_EQ(value, bytes);
  const std::string pttl = redis.Cli({"PTTL", "k"});
  EXPECT_GT(std::stoi(pttl), 9000);
  ASSERT_TRUE(store.Delete("k").ok());
  EXPECT_EQ(store.Get("k", &value).code(), ErrorCode::kNotFound);
  EXPECT_TRUE(store.Delete("k").ok());
}

TEST(RedisStoreTest, LocksHaveOneOwnerAndExpire) {
  RedisServer redis;
  redis.Start();
  RedisStore store(OptionsFor(redis));
  bool a = false, b = false;
  ASSERT_TRUE(store.TryLock("lock", "token-a", 300ms, &a).ok());
  ASSERT_TRUE(store.TryLock("lock", "token-b", 300ms, &b).ok());
  EXPECT_TRUE(a);
  EXPECT_FALSE(b);
  ASSERT_TRUE(store.Unlock("lock", "token-b").ok());  // not the owner: no effect
  EXPECT_EQ(redis.Cli({"GET", "lock"}), "token-a");
  ASSERT_TRUE(store.Unlock("lock", "token-a").ok());
  EXPECT_EQ(redis.Cli({"EXISTS", "lock"}), "0");
  ASSERT_TRUE(store.TryLock("lock", "token-a", 100ms, &a).ok());
  EXPECT_TRUE(webtier::testing::WaitFor([&] { return redis.Cli({"EXISTS", "lock"}) == "0"; }, 2s));
  ASSERT_TRUE(store.TryLock("lock", "token-b", 100ms, &b).ok());
  EXPECT_TRUE(b);  // the first holder "died": its lock expired
}

TEST(FillLockTest, OneKeyHasOneHolderUntilItsOwnerGoes) {
  RedisServer redis;
  redis.Start();
  RedisStore store(OptionsFor(redis));
  std::vector<FillLock> locks;
  for (int i = 0; i < 8; ++i) locks.emplace_back(&store, "lock", "token-" + std::to_string(i));
  std::vector<std::thread> threads;
  for (auto& lock : locks) threads.emplace_back([&lock] { ASSERT_TRUE(lock.TryTake(10s).ok()); });
  for (auto& t : threads) t.join();
  int holder = -1;
  for (int i = 0; i < 8; ++i) {
    if (!locks[i].held()) continue;
    EXPECT_EQ(holder, -1) << "two holders: " << holder << " and " << i;
    holder = i;
  }
  ASSERT_NE(holder, -1);
  EXPECT_EQ(redis.Cli({"GET", "lock"}), "token-" + std::to_string(holder));
  {
    FillLock owner = std::move(locks[holder]);  // moved: the old place releases nothing
    EXPECT_FALSE(locks[holder].held());
    locks.clear();  // every other one goes without touching the key
    EXPECT_EQ(redis.Cli({"GET", "lock"}), "token-" + std::to_string(holder));
  }  // the owner goes: released
  EXPECT_EQ(redis.Cli({"EXISTS", "lock"}), "0");

  FillLock next(&store, "lock", "token-next");
  ASSERT_TRUE(next.TryTake(10s).ok());
  EXPECT_TRUE(next.held());
  next = FillLock(&store, "other", "token-other");  // assigned over: the held lock is released
  EXPECT_FALSE(next.held());
  EXPECT_EQ(redis.Cli({"EXISTS", "lock"}), "0");
}

TEST(FillLockTest, AReleaseAfterTheExpiryLeavesTheNextHolderAlone) {
  RedisServer redis;
  redis.Start();
  RedisStore store(OptionsFor(redis));
  FillLock slow(&store, "lock", "token-slow");
  ASSERT_TRUE(slow.TryTake(100ms).ok());
  ASSERT_TRUE(slow.held());
  EXPECT_TRUE(webtier::testing::WaitFor([&] { return redis.Cli({"EXISTS", "lock"}) == "0"; }, 2s));
  FillLock next(&store, "lock", "token-next");
  ASSERT_TRUE(next.TryTake(10s).ok());
  ASSERT_TRUE(next.held());
  slow.Release();
  EXPECT_FALSE(slow.held());
  EXPECT_EQ(redis.Cli({"GET", "lock"}), "token-next");
}

TEST(FillLockTest, EveryCommandGoesThroughTheGuardAndADownStoreHoldsNothing) {
  RedisServer redis;
  redis.Start();
  RedisStore store(OptionsFor(redis));
  std::atomic<int> commands{0};
  FillLock::Guard guard = [&](const std::function<Status()>& op) {
    ++commands;
    return op();
  };
  {
    FillLock lock(&store, "lock", "token", guard);
    ASSERT_TRUE(lock.TryTake(10s).ok());
    ASSERT_TRUE(lock.held());
    ASSERT_TRUE(lock.TryTake(10s).ok());  // already held: no command
    EXPECT_EQ(commands.load(), 1);
  }
  EXPECT_EQ(commands.load(), 2);  // the release
  EXPECT_EQ(redis.Cli({"EXISTS", "lock"}), "0");

  redis.Kill();
  {
    FillLock lock(&store, "lock", "token", guard);
    EXPECT_FALSE(lock.TryTake(10s).ok());
    EXPECT_FALSE(lock.held());
  }
  EXPECT_EQ(commands.load(), 3);  // nothing to release
}

// A take that times out may still be run by the store (a stalled Redis runs
// what it had queued once it resumes), and a release that fails leaves the
// lock held: both are handed to `orphaned`, for a release once the store
// answers again.
TEST(FillLockTest, ATakeOfUnknownOutcomeAndAFailedReleaseAreOrphaned) {
  RedisServer redis;
  redis.Start();
  RedisStore store(OptionsFor(redis));
  const std::string info = redis.Cli({"INFO", "server"});
  const pid_t pid = std::stoi(info.substr(info.find("process_id:") + 11));
  std::vector<std::pair<std::string, std::string>> orphans;
  auto orphaned = [&](const std::string& key, const std::string& token) { orphans.emplace_back(key, token); };

  {
    FillLock lock(&store, "lock-a", "token-a", nullptr, orphaned);
    ::kill(pid, SIGSTOP);
    const Status s = lock.TryTake(10s);
    ::kill(pid, SIGCONT);
    EXPECT_EQ(s.code(), ErrorCode::kTimeout);
    EXPECT_FALSE(lock.held());
  }
  ASSERT_EQ(orphans.size(), 1u);
  EXPECT_EQ(orphans[0], std::make_pair(std::string("lock-a"), std::string("token-a")));
  // What makes it an orphan: Redis took it after all, for a token nobody holds.
  EXPECT_TRUE(webtier::testing::WaitFor([&] { return redis.Cli({"GET", "lock-a"}) == "token-a"; }, 2s));

  {
    FillLock lock(&store, "lock-b", "token-b", nullptr, orphaned);
    ASSERT_TRUE(lock.TryTake(10s).ok());
    ASSERT_TRUE(lock.held());
    ::kill(pid, SIGSTOP);
    lock.Release();
    ::kill(pid, SIGCONT);
    EXPECT_FALSE(lock.held());
  }
  ASSERT_EQ(orphans.size(), 2u);
  EXPECT_EQ(orphans[1].first, "lock-b");

  {
    FillLock lock(&store, "lock-c", "token-c", nullptr, orphaned);  // taken and released: nothing to report
    ASSERT_TRUE(lock.TryTake(10s).ok());
    ASSERT_TRUE(lock.held());
  }
  redis.Kill();
  {
    FillLock lock(&store, "lock-d", "token-d", nullptr, orphaned);  // refused at once: nothing was sent
    EXPECT_FALSE(lock.TryTake(10s).ok());
  }
  EXPECT_EQ(orphans.size(), 2u);
}

TEST(OrphanLocksTest, TakeReturnsLiveEntriesDropsExpiredOnesAndStaysBounded) {
  OrphanLocks orphans(3);
  const auto now = std::chrono::steady_clock::now();
  EXPECT_TRUE(orphans.empty());
  orphans.Add({"k1", "t1", now + 10s});
  orphans.Add({"k2", "t2", now - 1s});  // its lock has expired by itself
  orphans.Add({"k3", "t3", now + 10s});
  EXPECT_FALSE(orphans.empty());
  const std::string k3 = "k3";
  std::vector<OrphanLocks::Entry> only = orphans.Take(now, &k3);
  ASSERT_EQ(only.size(), 1u);
  EXPECT_EQ(only[0].token, "t3");
  orphans.Add({"k4", "t4", now + 10s});
  orphans.Add({"k5", "t5", now + 10s});
  orphans.Add({"k6", "t6", now + 10s});  // past the capacity: the oldest (k1) goes
  std::vector<OrphanLocks::Entry> all = orphans.Take(now);
  std::vector<std::string> keys;
  for (const auto& e : all) keys.push_back(e.lock_key);
  EXPECT_EQ(keys, (std::vector<std::string>{"k4", "k5", "k6"}));
  EXPECT_TRUE(orphans.empty());
}

// A fill's write of the entry `member` (value "v") with the index `set`.
StoreOp Indexed(const std::string& set, const std::string& member, std::chrono::milliseconds ttl) {
  FillWrite w;
  w.entries = {"entry-" + member};
  w.value = "v";
  w.indexes = {set};
  w.member = member;
  w.ttl = ttl;
  return StoreOp::PutFill(std::move(w));
}

// A batch is one pipeline on one connection: each op answered as its own
// method would be, a later op seeing what an earlier one did.
TEST(RedisStoreTest, RunAnswersEachOpInOrder) {
  RedisServer redis;
  redis.Start();
  RedisStore store(OptionsFor(redis));
  std::vector<StoreOp> ops;
  ops.push_back(StoreOp::TryLock("lock", "token-a", 10s));
  ops.push_back(StoreOp::Get("k"));
  ops.push_back(StoreOp::Put("k", "v1", 10s));
  ops.push_back(StoreOp::Get("k"));
  ops.push_back(StoreOp::TryLock("lock", "token-b", 10s));
  ops.push_back(Indexed("set", "k", 100s));
  ops.push_back(StoreOp::Unlock("lock", "token-b"));  // not the owner: no effect
  ASSERT_TRUE(store.Run(&ops).ok());
  EXPECT_TRUE(ops[0].status.ok());
  EXPECT_TRUE(ops[0].acquired);
  EXPECT_EQ(ops[1].status.code(), ErrorCode::kNotFound);
  EXPECT_TRUE(ops[2].status.ok());
  ASSERT_TRUE(ops[3].status.ok());
  EXPECT_EQ(ops[3].result, "v1");
  EXPECT_TRUE(ops[4].status.ok());
  EXPECT_FALSE(ops[4].acquired);
  EXPECT_TRUE(ops[5].status.ok());
  EXPECT_TRUE(ops[5].written);
  EXPECT_TRUE(ops[6].status.ok());
  EXPECT_EQ(redis.Cli({"GET", "lock"}), "token-a");
  EXPECT_EQ(redis.Cli({"SMEMBERS", "set"}), "k");
  EXPECT_GT(std::stoi(redis.Cli({"PTTL", "set"})), 90000);  // a new set gets its expiry

  // A set's expiry is lengthened, never shortened.
  std::vector<StoreOp> more;
  more.push_back(Indexed("set", "k2", 1s));
  more.push_back(StoreOp::Unlock("lock", "token-a"));
  ASSERT_TRUE(store.Run(&more).ok());
  EXPECT_GT(std::stoi(redis.Cli({"PTTL", "set"})), 90000);
  EXPECT_EQ(redis.Cli({"SCARD", "set"}), "2");
  EXPECT_EQ(redis.Cli({"EXISTS", "lock"}), "0");
  more.clear();
  more.push_back(Indexed("set", "k3", 200s));
  ASSERT_TRUE(store.Run(&more).ok());
  EXPECT_GT(std::stoi(redis.Cli({"PTTL", "set"})), 190000);

  // An error reply is that op's alone: the others still ran.
  redis.Cli({"SET", "notaset", "x"});
  more.clear();
  more.push_back(Indexed("notaset", "k", 10s));
  more.push_back(StoreOp::Put("after", "v", 10s));
  ASSERT_TRUE(store.Run(&more).ok());
  EXPECT_EQ(more[0].status.code(), ErrorCode::kInternal) << more[0].status.ToString();
  EXPECT_TRUE(more[1].status.ok());
  EXPECT_EQ(redis.Cli({"GET", "after"}), "v");
}

TEST(RedisStoreTest, ABatchToADownServerRunsNoOp) {
  RedisServer redis;
  redis.Start();
  RedisStore store(OptionsFor(redis));
  redis.Kill();
  std::vector<StoreOp> ops;
  ops.push_back(StoreOp::TryLock("lock", "token", 10s));
  ops.push_back(StoreOp::Get("k"));
  EXPECT_EQ(store.Run(&ops).code(), ErrorCode::kUnavailable);
  for (const StoreOp& op : ops) EXPECT_EQ(op.status.code(), ErrorCode::kUnavailable) << op.status.ToString();
  EXPECT_FALSE(ops[0].acquired);
}

// The lookup of a miss takes the fill lock in the same atomic step; a hit
// takes nothing.
TEST(RedisStoreTest, GetOrLockTakesTheLockOnlyWhenTheEntryIsAbsent) {
  RedisServer redis;
  redis.Start();
  RedisStore store(OptionsFor(redis));
  std::string value;
  bool acquired = false;
  uint64_t seq = 99;
  EXPECT_EQ(store.GetOrLock("k", "lock", "token-a", 10s, &value, &acquired, &seq).code(), ErrorCode::kNotFound);
  EXPECT_TRUE(acquired);
  EXPECT_EQ(seq, 0u);  // no purge yet
  EXPECT_EQ(redis.Cli({"GET", "lock"}), "token-a");
  EXPECT_GT(std::stoi(redis.Cli({"PTTL", "lock"})), 9000);
  ASSERT_TRUE(store.MarkPurged({"mark"}, 10s).ok());
  EXPECT_EQ(store.GetOrLock("k", "lock", "token-b", 10s, &value, &acquired, &seq).code(), ErrorCode::kNotFound);
  EXPECT_FALSE(acquired);
  EXPECT_EQ(seq, 1u);  // a miss learns the purge sequence, lock or not
  const std::string bytes("x\0y\r\n", 5);
  ASSERT_TRUE(store.Put("k", bytes, 10s).ok());
  ASSERT_TRUE(store.Unlock("lock", "token-a").ok());
  ASSERT_TRUE(store.GetOrLock("k", "lock", "token-c", 10s, &value, &acquired, &seq).ok());
  EXPECT_EQ(value, bytes);
  EXPECT_FALSE(acquired);
  EXPECT_EQ(redis.Cli({"EXISTS", "lock"}), "0");

  FillLock lock(&store, "lock2", "token-d");
  EXPECT_EQ(lock.ReadOrTake("absent", 10s, &value).code(), ErrorCode::kNotFound);
  EXPECT_TRUE(lock.held());
  lock.Release();
  EXPECT_EQ(redis.Cli({"EXISTS", "lock2"}), "0");
}

// A fill's writes go in at once, unless a purge marked the URL or a tag
// after the fill read the purge sequence.
TEST(RedisStoreTest, APurgeMarkFencesOffTheFillsBegunBeforeIt) {
  RedisServer redis;
  redis.Start();
  RedisStore store(OptionsFor(redis));
  auto write = [](uint64_t since) {
    FillWrite w;
    w.entries = {"entry", "variant"};
    w.value = std::string("v\0\r\n", 4);
    w.indexes = {"url-index", "tag-index"};
    w.member = "entry";
    w.ttl = 100s;
    w.marks = {"url-mark", "tag-mark"};
    w.since = since;
    return w;
  };
  bool written = false;
  ASSERT_TRUE(store.PutFill(write(0), &written).ok());
  EXPECT_TRUE(written);
  EXPECT_EQ(redis.Cli({"STRLEN", "variant"}), "4");
  EXPECT_GT(std::stoi(redis.Cli({"PTTL", "entry"})), 90000);
  EXPECT_EQ(redis.Cli({"SMEMBERS", "tag-index"}), "entry");
  EXPECT_GT(std::stoi(redis.Cli({"PTTL", "url-index"})), 90000);

  // A purge of the tag: a fill begun before it (since 0) writes nothing at all.
  redis.Cli({"DEL", "entry", "variant", "url-index", "tag-index"});
  ASSERT_TRUE(store.MarkPurged({"tag-mark"}, 5s).ok());
  EXPECT_EQ(redis.Cli({"GET", std::string(kPurgeSeqKey)}), "1");
  EXPECT_EQ(redis.Cli({"GET", "tag-mark"}), "1");
  const int mark_ttl = std::stoi(redis.Cli({"PTTL", "tag-mark"}));
  EXPECT_GT(mark_ttl, 4000);
  EXPECT_LE(mark_ttl, 5000);
  ASSERT_TRUE(store.PutFill(write(0), &written).ok());
  EXPECT_FALSE(written);
  EXPECT_EQ(redis.Cli({"EXISTS", "entry", "variant", "url-index", "tag-index"}), "0");
  // One begun after it (since 1) writes; so does one whose marks are others'.
  ASSERT_TRUE(store.PutFill(write(1), &written).ok());
  EXPECT_TRUE(written);
  ASSERT_TRUE(store.MarkPurged({"elsewhere"}, 5s).ok());
  ASSERT_TRUE(store.PutFill(write(1), &written).ok());
  EXPECT_TRUE(written);
  // In a batch, as a fill sends it: its lock goes, fenced off or not (and
  // only while the fill still holds it).
  ASSERT_TRUE(store.MarkPurged({"url-mark", "tag-mark"}, 5s).ok());
  EXPECT_EQ(redis.Cli({"GET", "url-mark"}), "3");
  redis.Cli({"SET", "lock", "token-a"});
  FillWrite fenced = write(2);
  fenced.lock_key = "lock";
  fenced.token = "token-a";
  std::vector<StoreOp> ops;
  ops.push_back(StoreOp::PutFill(fenced));
  ops.push_back(StoreOp::Get(kPurgeSeqKey));
  ASSERT_TRUE(store.Run(&ops).ok());
  EXPECT_TRUE(ops[0].status.ok());
  EXPECT_FALSE(ops[0].written);
  EXPECT_EQ(redis.Cli({"EXISTS", "lock"}), "0");
  EXPECT_EQ(PurgeSeqOf(ops[1].status, ops[1].result), 3u);
  redis.Cli({"DEL", "entry"});
  redis.Cli({"SET", "lock", "token-b"});  // taken by another fill after ours expired
  FillWrite late = write(3);
  late.lock_key = "lock";
  late.token = "token-a";
  ASSERT_TRUE(store.PutFill(late, &written).ok());
  EXPECT_TRUE(written);
  EXPECT_EQ(redis.Cli({"GET", "lock"}), "token-b");
  EXPECT_EQ(redis.Cli({"STRLEN", "entry"}), "4");
  // The value waits under a staging key until the script moves or drops it.
  EXPECT_EQ(redis.Cli({"KEYS", "webtier:staging:*"}), "");
}

// Scripts go by their SHA-1 (EVALSHA). A server that forgot them (SCRIPT
// FLUSH; a restarted or promoted one never saw them) gets each command again
// with its body, in the same call: no call fails for it.
TEST(RedisStoreTest, AServerThatForgotTheScriptsIsSentThemAgain) {
  RedisServer redis;
  redis.Start();
  RedisStore store(OptionsFor(redis));
  std::string value;
  bool acquired = false;
  uint64_t seq = 0;
  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE(round);
    EXPECT_EQ(redis.Cli({"SCRIPT", "FLUSH"}), "OK");
    ASSERT_TRUE(store.MarkPurged({"mark"}, 10s).ok());
    EXPECT_EQ(redis.Cli({"SCRIPT", "FLUSH"}), "OK");
    EXPECT_EQ(store.GetOrLock("k", "lock", "t", 10s, &value, &acquired, &seq).code(), ErrorCode::kNotFound);
    EXPECT_TRUE(acquired);
    EXPECT_EQ(seq, static_cast<uint64_t>(round + 1));
    redis.Cli({"SADD", "set", "m"});
    std::vector<std::string> members;
    ASSERT_TRUE(store.TakeSet("set", &members).ok());
    EXPECT_EQ(members, std::vector<std::string>{"m"});
    EXPECT_EQ(redis.Cli({"SCRIPT", "FLUSH"}), "OK");
    std::vector<StoreOp> ops;
    ops.push_back(StoreOp::Get("k"));
    ops.push_back(StoreOp::Unlock("other-lock", "t"));
    FillWrite w;
    w.entries = {"entry"};
    w.value = "v";
    w.indexes = {"index"};
    w.member = "entry";
    w.ttl = 10s;
    w.marks = {"mark"};
    w.since = seq;  // read after the mark: not fenced off by it
    w.lock_key = "lock";
    w.token = "t";
    ops.push_back(StoreOp::PutFill(w));
    ASSERT_TRUE(store.Run(&ops).ok());
    for (const StoreOp& op : ops) {
      EXPECT_TRUE(op.status.ok() || op.status.code() == ErrorCode::kNotFound) << op.status.ToString();
    }
    EXPECT_TRUE(ops[2].written);
    EXPECT_EQ(redis.Cli({"GET", "entry"}), "v");
    EXPECT_EQ(redis.Cli({"EXISTS", "lock"}), "0");
    redis.Cli({"DEL", "entry"});
  }
  // Once known, they went by their SHA-1.
  EXPECT_NE(redis.Cli({"INFO", "commandstats"}).find("cmdstat_evalsha:calls="), std::string::npos);
}

TEST(RedisStoreTest, AuthIsSent) {
  RedisServer redis("s3cret");
  redis.Start();
  RedisStore good(OptionsFor(redis, "s3cret"));
  EXPECT_TRUE(good.Put("k", "v", 1s).ok());
  RedisStore bad(OptionsFor(redis, "wrong"));
  std::string value;
  EXPECT_FALSE(bad.Get("k", &value).ok());
}

TEST(RedisStoreTest, OutagesAreErrorsAndTheStoreReconnects) {
  RedisServer redis;
  redis.Start();
  RedisStore store(OptionsFor(redis));
  ASSERT_TRUE(store.Put("k", "v", 60s).ok());
  redis.Kill();
  std::string value;
  Status down = store.Get("k", &value);  // the pooled connection is dead
  EXPECT_FALSE(down.ok());
  EXPECT_NE(down.code(), ErrorCode::kNotFound);
  Status refused = store.Get("k", &value);  // a new connection is refused
  EXPECT_EQ(refused.code(), ErrorCode::kUnavailable) << refused.ToString();
  redis.Start();  // same port, empty
  EXPECT_EQ(store.Get("k", &value).code(), ErrorCode::kNotFound);
  EXPECT_TRUE(store.Put("k", "v2", 60s).ok());
}

TEST(RedisStoreTest, ARestartedServerCostsNoFailedCommand) {
  RedisServer redis;
  redis.Start();
  RedisStore store(OptionsFor(redis));
  // Grow the pool: eight connections in use at once, then idle.
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) ASSERT_TRUE(store.Put("k" + std::to_string(i), "v", 60s).ok());
    });
  }
  for (auto& t : threads) t.join();
  redis.Kill();
  redis.Start();  // every pooled connection is now dead
  std::string value;
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(store.Get("k1", &value).code(), ErrorCode::kNotFound) << i;  // not a connection error
  }
}

TEST(RedisStoreTest, AStalledServerTimesOutQuickly) {
  RedisServer redis;
  redis.Start();
  RedisOptions options = OptionsFor(redis);
  options.command_timeout = 100ms;
  RedisStore store(options);
  ASSERT_TRUE(store.Put("k", "v", 60s).ok());
  // SIGSTOP: the socket stays open but nothing answers.
  const std::string pid = redis.Cli({"INFO", "server"});
  const auto at = pid.find("process_id:");
  ASSERT_NE(at, std::string::npos);
  const pid_t server_pid = std::stoi(pid.substr(at + 11));
  ASSERT_EQ(::kill(server_pid, SIGSTOP), 0);
  std::string value;
  auto start = std::chrono::steady_clock::now();
  Status s = store.Get("k", &value);
  auto took = std::chrono::steady_clock::now() - start;
  ::kill(server_pid, SIGCONT);
  EXPECT_EQ(s.code(), ErrorCode::kTimeout) << s.ToString();
  EXPECT_LT(took, 1s);
  EXPECT_TRUE(store.Get("k", &value).ok());  // reconnected after the stall
}

TEST(RedisSubscriberTest, DeliversMessagesAndResubscribesAfterARestart) {
  RedisServer redis;
  redis.Start();
  RedisOptions options = OptionsFor(redis);
  std::mutex mu;
  std::vector<std::string> got;
  RedisSubscriber sub(options, "chan", [&](const std::string& m) {
    std::lock_guard<std::mutex> lock(mu);
    got.push_back(m);
  }, 100ms);
  auto count = [&] {
    std::lock_guard<std::mutex> lock(mu);
    return got.size();
  };
  ASSERT_TRUE(webtier::testing::WaitFor([&] { return sub.subscribed(); }, 5s));
  RedisStore store(options);
  ASSERT_TRUE(store.Publish("chan", std::string("a\0b", 3)).ok());
  ASSERT_TRUE(store.Publish("other", "x").ok());
  ASSERT_TRUE(store.Publish("chan", "second").ok());
  ASSERT_TRUE(webtier::testing::WaitFor([&] { return count() == 2; }, 5s));
  EXPECT_EQ(got[0], std::string("a\0b", 3));
  EXPECT_EQ(got[1], "second");

  redis.Kill();
  ASSERT_TRUE(webtier::testing::WaitFor([&] { return !sub.subscribed(); }, 5s));
  redis.Start();
  ASSERT_TRUE(webtier::testing::WaitFor([&] { return sub.subscribed(); }, 5s));
  ASSERT_TRUE(webtier::testing::WaitFor([&] {
    store.Publish("chan", "after restart").IgnoreError();  // until the new subscription hears it
    return count() >= 3;
  }, 5s));
}

}  // namespace
}  // namespace webtier::cache
