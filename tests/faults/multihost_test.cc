// The tier across machines without Kubernetes (docs/deploy.md "Several
// machines"): every part on a "host" of its own, network namespaces on one
// switched LAN (NetLan), each with its own IP stack and the standard ports. A
// ZooKeeper ensemble on three hosts, Redis on one, webnodes on two, the
// balancer on one; the test's load comes from outside (the root namespace).
// Webnodes listen on 0.0.0.0 and advertise their host's address (--advertise),
// as a compose stack on several machines does. Scaling up and down on both
// webnode hosts under load: every node serves, no request fails.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "net_host.h"
#include "net_lan.h"
#include "report.h"
#include "webtier/testing/harness.h"
#include "webtier/testing/load.h"

namespace webtier::faults {
namespace {

using namespace webtier::testing;
namespace fs = std::filesystem;

constexpr int kLanIndex = 100;  // 198.18.100.0/24
constexpr int kZkServers = 3;

class MultiHostTest : public ::testing::Test {
 protected:
  // A ZooKeeper server per host, peers on the LAN addresses, standard ports.
  void StartEnsemble() {
    for (int i = 0; i < kZkServers; ++i) zk_hosts_.push_back(lan_->AddHost());
    for (int i = 0; i < kZkServers; ++i) {
      const std::string dir = dir_.path() + "/zk" + std::to_string(i + 1);
      fs::create_directories(dir + "/data");
      std::ofstream(dir + "/data/myid") << i + 1 << "\n";
      std::ofstream cfg(dir + "/zoo.cfg");
      cfg << "tickTime=500\ninitLimit=20\nsyncLimit=5\nmaxClientCnxns=0\nadmin.enableServer=false\n"
          << "4lw.commands.whitelist=ruok,srvr\n"
          << "dataDir=" << dir << "/data\nclientPort=2181\nclientPortAddress=" << lan_->Ip(zk_hosts_[i]) << "\n";
      for (int j = 0; j < kZkServers; ++j) {
        cfg << "server." << j + 1 << "=" << lan_->Ip(zk_hosts_[j]) << ":2888:3888\n";
      }
    }
    for (int i = 0; i < kZkServers; ++i) {
      zk_.push_back(StartZooKeeperProcess(dir_.path() + "/zk" + std::to_string(i + 1), WrapFor(zk_hosts_[i])));
      if (!zk_connect_.empty()) zk_connect_ += ",";
      zk_connect_ += lan_->Ip(zk_hosts_[i]) + ":2181";
    }
  }

  void StartRedis() {
    RequireInstalled("/usr/bin/redis-server");
    redis_host_ = lan_->AddHost();
    redis_ = std::make_unique<Process>(Process::Options{
        .argv = WrapFor(redis_host_)({"/usr/bin/redis-server", "--bind", lan_->Ip(redis_host_), "--port", "6379",
                                      "--save", "", "--appendonly", "no", "--protected-mode", "no",
                                      "--dir", dir_.path()}),
        .env = {},
        .log_path = dir_.path() + "/redis.log",
        .cwd = {}});
  }

  // One more webnode on `host`: 0.0.0.0:0 inside the host, advertised as the
  // host's LAN address with the port it bound.
  void AddNode(int host, const std::string& zone) {
    const std::string id = zone + "-" + std::to_string(++node_count_);
    nodes_.push_back(std::make_unique<Webnode>(
        id, zk_connect_,
        std::vector<std::string>{"--listen", "0.0.0.0:0", "--advertise", lan_->Ip(host), "--zone", zone,
                                 "--redis", lan_->Ip(redis_host_) + ":6379", "--threads", "1", "--drain-ms", "1500"},
        lan_->Ip(host), WrapFor(host)));
    nodes_.back()->WaitHealthy();
  }

  CommandWrap WrapFor(int host) {
    return [this, host](std::vector<std::string> argv) { return lan_->Wrap(host, argv); };
  }

  bool WaitPool(int healthy, std::chrono::milliseconds timeout) {
    return WaitFor([&] { return balancer_->HealthyCount() == healthy; }, timeout);
  }

  // SIGTERM: the node deregisters, drains, exits 0.
  void StopNode(size_t i) {
    nodes_[i]->process().Signal(SIGTERM);
    auto rc = nodes_[i]->process().Wait(10s);
    EXPECT_EQ(rc.value_or(-1), 0) << nodes_[i]->process().Log();
  }

  TempDir dir_{"webtier-lan"};
  std::unique_ptr<NetLan> lan_;
  std::vector<int> zk_hosts_;
  std::vector<std::unique_ptr<Process>> zk_;
  std::string zk_connect_;
  int redis_host_ = -1;
  std::unique_ptr<Process> redis_;
  int node_count_ = 0;
  std::vector<std::unique_ptr<Webnode>> nodes_;
  std::unique_ptr<Balancer> balancer_;
};

// 17. The tier across hosts: 3 ZooKeeper hosts, a Redis host, two webnode
//     hosts scaled 1+1 -> 3+3 -> 2+2 under load, the balancer on a host of
//     its own. Every node serves; zero failed requests.
TEST_F(MultiHostTest, S17_TierAcrossHosts) {
  if (!NetHost::Supported()) GTEST_SKIP() << "network namespaces need root here";
  lan_ = std::make_unique<NetLan>(kLanIndex);
  StartEnsemble();
  StartRedis();
  const int host_a = lan_->AddHost();
  const int host_b = lan_->AddHost();
  const int balancer_host = lan_->AddHost();
  AddNode(host_a, "host-a");  // registers once the ensemble has a quorum
  AddNode(host_b, "host-b");
  balancer_ = std::make_unique<Balancer>(zk_connect_, "/webtier/nodes",
                                         std::vector<std::string>{"--threads", "1", "--state-file",
                                                                  dir_.path() + "/pool.json"},
                                         lan_->Ip(balancer_host), WrapFor(balancer_host));
  ASSERT_TRUE(WaitPool(2, 60s)) << balancer_->StatusBody() << nodes_[0]->process().Log();

  LoadGenerator::Options o;
  o.host = lan_->Ip(balancer_host);
  o.port = balancer_->port();
  o.paths = {"/", "/api/primes/2000", "/api/time"};
  o.rate_per_sec = 300;
  o.threads = 4;
  LoadGenerator load(o);
  load.Start();
  ASSERT_TRUE(WaitFor([&] { return load.Snapshot().requests >= 100; }, 10s)) << load.Snapshot().Describe();

  // Scale up on both hosts: 3 + 3.
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 2; ++i) {
    AddNode(host_a, "host-a");
    AddNode(host_b, "host-b");
  }
  const bool six = WaitPool(6, 10s);
  const auto joined = std::chrono::steady_clock::now() - t0;
  const LoadStats before = load.Snapshot();
  std::this_thread::sleep_for(2s);
  LoadStats at_six = load.Snapshot().Since(before);

  // Scale down on both hosts: 2 + 2, by SIGTERM (deregister, drain, exit).
  StopNode(2);
  StopNode(3);
  const bool four = WaitPool(4, 10s);
  std::this_thread::sleep_for(1s);
  load.Stop();
  const LoadStats s = load.Snapshot();

  std::string hosts;
  for (auto& m : balancer_->Members().value_or(std::vector<PoolMember>{})) hosts += m.id + "@" + m.address + " ";
  AddResult({"17. tier across hosts (netns LAN): webnodes 1+1 -> 3+3 -> 2+2", s.requests, s.failed,
             std::to_string(std::chrono::duration<double>(joined).count()).substr(0, 4) + " s from the first new node to a pool of 6",
             "pool: " + hosts});
  ASSERT_TRUE(six) << balancer_->StatusBody();
  ASSERT_TRUE(four) << balancer_->StatusBody();
  for (auto& n : nodes_) {
    EXPECT_GT(at_six.served_by[n->id()], 0u) << n->id() << " served nothing at 3+3: " << at_six.Describe();
  }
  for (auto& m : balancer_->Members().value_or(std::vector<PoolMember>{})) {
    EXPECT_EQ(m.address.rfind("198.18.100.", 0), 0u) << m.id << " advertised " << m.address;
  }
  // One shared cache across the hosts: hits, and no Redis errors on either host.
  EXPECT_GT(s.x_cache.count("HIT") ? s.x_cache.at("HIT") : 0u, 0u) << s.Describe();
  for (size_t i : {0u, 1u}) {
    EXPECT_EQ(MetricValue(nodes_[i]->Metrics(), "webnode_redis_errors_total").value_or(-1), 0) << nodes_[i]->id();
  }
  EXPECT_EQ(s.failed, 0u) << s.Describe();
}

}  // namespace
}  // namespace webtier::faults
