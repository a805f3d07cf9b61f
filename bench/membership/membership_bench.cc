// Membership benchmark: starts a real ZooKeeper (as the test harness does),
// follows a fresh path with a MemberRegistry feeding a real Pool, writes N
// members at once with the asynchronous C API (pipelined on one connection)
// and prints, per N, how long after the last write completed the pool held
// all N.  Usage: bench_membership [N ...]   (default: 1000 10000)
#include <zookeeper/zookeeper.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "webtier/balancer/membership/member_registry.h"
#include "webtier/balancer/upstream/pool.h"
#include "webtier/common/log.h"
#include "webtier/common/serverset.h"
#include "webtier/common/zk_session.h"
#include "webtier/testing/harness.h"

using namespace webtier;
using Clock = std::chrono::steady_clock;

namespace {

// Forwards to the Pool and notes when it first holds `want` members.
class TimedPool : public balancer::MembershipListener {
 public:
  explicit TimedPool(size_t want) : pool_(balancer::PolicyKind::kRoundRobin, nullptr), want_(want) {}
  void OnMembershipUpdate(const std::vector<balancer::MemberRecord>& added,
                          const std::vector<std::string>& removed) override {  // balancer::MembershipListener
    const auto start = Clock::now();
    pool_.OnMembershipUpdate(added, removed);
    ++updates_;
    if (std::getenv("BENCH_VERBOSE") != nullptr)
      std::fprintf(stderr, "update: +%zu -%zu -> %zu members, pool took %.1f ms, at %.1f ms\n", added.size(), removed.size(),
                   pool_.Snapshot()->members.size(), std::chrono::duration<double, std::milli>(Clock::now() - start).count(),
                   std::chrono::duration<double, std::milli>(Clock::now().time_since_epoch()).count());
    if (pool_.Snapshot()->members.size() == want_) {
      std::lock_guard l(mu_);
      if (!full_) full_ = Clock::now();
      cv_.notify_all();
    }
  }
  // Time the pool first held every member, or nullopt after `timeout`.
  std::optional<Clock::time_point> WaitFull(std::chrono::seconds timeout) {
    std::unique_lock l(mu_);
    cv_.wait_for(l, timeout, [&] { return full_.has_value(); });
    return full_;
  }
  int updates() const { return updates_.load(); }

 private:
  balancer::Pool pool_;
  const size_t want_;
  std::atomic<int> updates_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<Clock::time_point> full_;
};

// Writes `n` member znodes under `path` with zoo_acreate and returns when the
// last completion arrived.
struct Writer {
  std::mutex mu;
  std::condition_variable cv;
  int pending = 0;
  int failed = 0;
  Clock::time_point last;

  static void Done(int rc, const char*, const void* data) {
    auto* w = static_cast<Writer*>(const_cast<void*>(data));
    std::lock_guard l(w->mu);
    if (rc != ZOK) ++w->failed;
    w->last = Clock::now();
    if (--w->pending == 0) w->cv.notify_all();
  }

  Clock::time_point Write(zhandle_t* zh, const std::string& path, int n) {
    pending = n;
    for (int i = 0; i < n; ++i) {
      serverset::Member m;
      m.id = "m" + std::to_string(i);
      m.host = "127.0.0." + std::to_string(1 + i / 60000);
      m.port = 1024 + i % 60000;
      const std::string data = serverset::Encode(m);
      const std::string node = path + "/member_";
      int rc = zoo_acreate(zh, node.c_str(), data.data(), static_cast<int>(data.size()), &ZOO_OPEN_ACL_UNSAFE,
                           ZOO_SEQUENCE, &Writer::Done, this);
      if (rc != ZOK) {
        std::lock_guard l(mu);
        ++failed;
        --pending;
      }
    }
    std::unique_lock l(mu);
    cv.wait(l, [&] { return pending == 0; });
    return last;
  }
};

int Run(const std::string& connect, zhandle_t* zh, int n) {
  const std::string path = "/bench/n" + std::to_string(n);
  zk::Session session({.connect = connect, .session_timeout_ms = 30000, .component = "zk"});
  TimedPool pool(static_cast<size_t>(n));
  balancer::MemberRegistry registry(session, {.path = path, .state_file = ""}, pool, nullptr);
  struct CloseSession {  // no watch may reach `registry` once it is gone
    zk::Session& s;
    ~CloseSession() { s.Close(); }
  } close_session{session};
  if (!session.Start().ok()) return 1;
  if (!testing::WaitFor([&] { return registry.synced(); }, std::chrono::seconds(30))) {
    std::fprintf(stderr, "registry did not sync\n");
    return 1;
  }
  if (Status s = session.EnsurePath(path); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  Writer writer;
  const auto t0 = Clock::now();
  const auto last = writer.Write(zh, path, n);
  if (std::getenv("BENCH_VERBOSE") != nullptr)
    std::fprintf(stderr, "first write at %.1f ms, last at %.1f ms\n",
                 std::chrono::duration<double, std::milli>(t0.time_since_epoch()).count(),
                 std::chrono::duration<double, std::milli>(last.time_since_epoch()).count());
  const auto full = pool.WaitFull(std::chrono::seconds(120));
  using ms = std::chrono::duration<double, std::milli>;
  if (!full || writer.failed != 0) {
    std::printf("members=%d FAILED (writes failed=%d, pool full=%s)\n", n, writer.failed, full ? "yes" : "no");
    return 1;
  }
  std::printf("members=%d write_ms=%.1f last_write_to_pool_ms=%.1f pool_updates=%d\n", n, ms(last - t0).count(),
              ms(*full - last).count(), pool.updates());
  std::fflush(stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> sizes;
  for (int i = 1; i < argc; ++i) sizes.push_back(std::atoi(argv[i]));
  if (sizes.empty()) sizes = {1000, 10000};
  // One "member added" line per member would measure stderr; BENCH_VERBOSE=1
  // shows the registry's batches (and every line) instead.
  log::SetLevel(std::getenv("BENCH_VERBOSE") != nullptr ? log::Level::kDebug : log::Level::kWarn);
  zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);

  testing::ZooKeeperServer zk(2000);
  zk.Start();
  zhandle_t* zh = zookeeper_init(zk.connect().c_str(), nullptr, 30000, nullptr, nullptr, 0);
  if (zh == nullptr) return 1;
  zk::Session admin({.connect = zk.connect(), .session_timeout_ms = 30000, .component = "zk"});
  if (!admin.Start().ok() || !testing::WaitFor([&] { return admin.connected(); }, std::chrono::seconds(30))) return 1;
  int rc = 0;
  for (int n : sizes) {
    if (!admin.EnsurePath("/bench").ok()) return 1;
    rc |= Run(zk.connect(), zh, n);
  }
  zookeeper_close(zh);
  return rc;
}
