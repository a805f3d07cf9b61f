// Test harness: a replicated Redis under Sentinel, all real processes on free
// loopback ports: a primary, its replicas (RedisServer) and redis-sentinel
// processes (Debian package redis-sentinel) monitoring it, each Sentinel with
// its own writable config file in a temp dir (Sentinel rewrites it). Short
// down-after and failover timeouts so a failover completes in a few seconds.
// Every process is killed and every file removed by the destructor. Setup
// failures throw std::runtime_error. For the test's own thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "webtier/testing/harness.h"

namespace webtier::testing {

class RedisSentinels {
 public:
  struct Options {
    int replicas = 1;
    int sentinels = 3;                                  // quorum: a majority of them
    std::string master_name = "webtier";
    std::chrono::milliseconds down_after{1000};         // sentinel down-after-milliseconds
    std::chrono::milliseconds failover_timeout{2000};   // sentinel failover-timeout
    std::string password;  // the Sentinels' requirepass (and sentinel-pass among them); empty = none
    // The Redis servers' requirepass (and masterauth, and the Sentinels'
    // auth-pass for them); empty = none. server(i).Cli() authenticates.
    std::string server_password;
  };
  RedisSentinels();  // the defaults above
  explicit RedisSentinels(Options options);
  ~RedisSentinels();
  RedisSentinels(const RedisSentinels&) = delete;
  RedisSentinels& operator=(const RedisSentinels&) = delete;

  // StartServers() then StartSentinels().
  void Start();
  // Starts server 0 as the primary and the others as its replicas; returns
  // once every replica's link is up (throws after 20 s).
  void StartServers();
  // Starts every Sentinel (monitoring server 0, the primary at StartServers)
  // and returns once each one knows the master, every replica and the other
  // Sentinels, so a failover can be agreed on (throws after 30 s).
  void StartSentinels();
  void KillSentinel(int i);

  // Servers: 0 is the first primary, 1.. its replicas. Ports are fixed at
  // construction, so a killed server restarted with Start() keeps its port
  // (and comes back as a master with no data, until Sentinel demotes it).
  RedisServer& server(int i) { return *servers_[static_cast<size_t>(i)]; }
  int server_count() const { return static_cast<int>(servers_.size()); }
  uint16_t sentinel_port(int i) const { return sentinel_ports_[static_cast<size_t>(i)]; }
  // "127.0.0.1:p1,127.0.0.1:p2,..." for --redis-sentinel.
  std::string sentinel_list() const;
  const std::string& master_name() const { return options_.master_name; }

  // The master port Sentinel `i` names now; 0 when it does not answer.
  uint16_t MasterPort(int i = 0) const;
  // The server whose port Sentinel `i` names as master; -1 when none.
  int MasterIndex(int i = 0) const;
  // The role a server reports (ROLE's first word: "master", "slave"), "" when it does not answer.
  std::string Role(int server_index);
  // Waits until every replica of the current master (by ROLE) has
  // acknowledged the master's replication offset as it was when called:
  // everything written before the call is on the replicas. False after `timeout`.
  bool WaitReplicated(std::chrono::milliseconds timeout = 5s);

 private:
  void StartSentinel(int i);
  std::string SentinelCli(int i, const std::vector<std::string>& args) const;

  Options options_;
  TempDir dir_;
  std::vector<std::unique_ptr<RedisServer>> servers_;
  std::vector<uint16_t> sentinel_ports_;
  std::vector<std::unique_ptr<Process>> sentinels_;
};

}  // namespace webtier::testing
