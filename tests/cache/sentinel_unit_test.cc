// SentinelMaster and AskSentinels with no Sentinel answering: nothing to talk
// to (closed ports) and Sentinels that accept but never reply (a listening
// socket nobody reads). No Redis process; CI runs these under ASan+UBSan.
// The failovers themselves are in redis_failover_test.cc, against real Sentinels.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>

#include "webtier/cache/redis_store.h"
#include "webtier/cache/sentinel.h"
#include "webtier/testing/harness.h"

namespace webtier::cache {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const bool kSigpipeIgnored = [] {
  ::signal(SIGPIPE, SIG_IGN);
  return true;
}();

// A socket that accepts connections (the kernel completes them) and never answers.
class SilentPort {
 public:
  SilentPort() : fd_(testing::ListenLoopback(&port_)) {}
  ~SilentPort() { ::close(fd_); }
  net::HostPort address() const { return {"127.0.0.1", port_}; }

 private:
  uint16_t port_ = 0;
  int fd_;
};

SentinelOptions Options(std::vector<net::HostPort> sentinels) {
  SentinelOptions o;
  o.sentinels = std::move(sentinels);
  o.connect_timeout = 100ms;
  o.command_timeout = 100ms;
  return o;
}

TEST(SentinelUnitTest, NoSentinelListeningMeansNoMasterAndTheStoreFailsAtOnce) {
  const SentinelOptions o = Options({{"127.0.0.1", testing::FreePort()}, {"127.0.0.1", testing::FreePort()}});
  SentinelAnswer answer;
  Status asked = AskSentinels(o, &answer);
  EXPECT_EQ(asked.code(), ErrorCode::kUnavailable) << asked.ToString();

  net::HostPort master;
  auto followed = std::make_shared<SentinelMaster>(o);
  uint64_t generation = 0;
  EXPECT_EQ(followed->Current(&master, &generation).code(), ErrorCode::kUnavailable);
  EXPECT_EQ(followed->Describe(), "unknown");
  followed->Suspect(0);  // harmless while nothing is known
  RedisStore store({.master = followed});
  // No master: the store does not try to connect anywhere.
  Status put = store.Put("k", "v", 1s);
  EXPECT_EQ(put.code(), ErrorCode::kUnavailable);
  EXPECT_NE(put.message().find("not known"), std::string::npos) << put.ToString();
  std::string value;
  EXPECT_EQ(store.Get("k", &value).code(), ErrorCode::kUnavailable);
  EXPECT_FALSE(followed->subscribed());
  EXPECT_EQ(followed->failovers(), 0u);
}

TEST(SentinelUnitTest, SilentSentinelsCostTheirTimeoutsAndStopPromptly) {
  SilentPort a, b;
  const SentinelOptions o = Options({a.address(), b.address()});
  SentinelAnswer answer;
  auto start = Clock::now();
  Status asked = AskSentinels(o, &answer);
  const auto took = Clock::now() - start;
  EXPECT_EQ(asked.code(), ErrorCode::kUnavailable) << asked.ToString();
  EXPECT_GE(took, 200ms) << "each silent Sentinel should cost its command timeout";
  EXPECT_LT(took, 2s) << "a silent Sentinel must not block past its timeouts";

  start = Clock::now();
  {
    SentinelMaster followed(o);
    std::this_thread::sleep_for(300ms);  // its thread is asking or subscribing now
    EXPECT_EQ(followed.Describe(), "unknown");
  }
  EXPECT_LT(Clock::now() - start, 2s) << "the destructor waits at most one ask";
}

TEST(SentinelUnitTest, AFixedMasterIsNeverSuspectedNorRoleChecked) {
  FixedRedisMaster fixed({"10.0.0.1", 6379});
  net::HostPort a;
  uint64_t g1 = 0, g2 = 0;
  ASSERT_TRUE(fixed.Current(&a, &g1).ok());
  fixed.Suspect(g1);
  ASSERT_TRUE(fixed.Current(&a, &g2).ok());
  EXPECT_EQ(g1, g2);
  EXPECT_EQ(fixed.Describe(), "10.0.0.1:6379");
  EXPECT_FALSE(fixed.VerifyRole());
}

}  // namespace
}  // namespace webtier::cache
