// Follows the members under --zk-path through a zk::Session: lists the
// children with a watch, reads each member with a watch, decodes it as
// serverset JSON and hands the deltas to a MembershipListener (the Pool).
// Invalid members are ignored, logged once and counted. While ZooKeeper is
// unreachable the last known pool stays; on (re)connection everything is
// re-listed and watches re-armed. Each change is saved to the state file.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "webtier/balancer/host.h"
#include "webtier/balancer/pool.h"
#include "webtier/common/status.h"
#include "webtier/common/zk_client.h"

namespace webtier::balancer {

class ProxyMetrics;

class MemberRegistry {
 public:
  struct Options {
    std::string path = "/webtier/nodes";
    std::string state_file;  // empty: no persistence
  };

  // `session`, `listener` and `metrics` (may be null) must outlive this.
  // Registers a session listener: construct before session.Start().
  MemberRegistry(zk::Client& session, Options options, MembershipListener& listener, ProxyMetrics* metrics);
  MemberRegistry(const MemberRegistry&) = delete;
  MemberRegistry& operator=(const MemberRegistry&) = delete;

  // Seeds the pool from the state file unless ZooKeeper already answered.
  // kNotFound when there is no file; other errors when it cannot be read.
  Status LoadStateFile();

  // True once a listing from ZooKeeper has been applied.
  bool synced() const { return synced_.load(); }
  // "connected", "connecting", "disconnected" or "expired".
  std::string zk_state() const;
  // Where the current pool came from: "none", "state_file" or "zookeeper".
  std::string source() const;

 private:
  void OnSessionEvent(zk::Client::Event event);
  void Sync();                              // re-list and diff; takes mu_
  void SyncLocked();
  void OnMemberChanged(const std::string& key);
  // Applies `next` as the whole pool: computes the delta against current_.
  void ApplyLocked(std::map<std::string, MemberRecord> next);
  // Reads one member (arming its watch). false when it is gone or invalid.
  bool ReadMemberLocked(const std::string& key, MemberRecord* out);

  zk::Client& session_;
  const Options options_;
  MembershipListener& listener_;
  ProxyMetrics* metrics_;

  mutable std::mutex mu_;
  std::map<std::string, MemberRecord> current_;   // what the listener has
  std::map<std::string, std::string> invalid_;    // key -> data already counted
  std::set<std::string> data_watched_;            // keys with an armed data watch
  bool children_watched_ = false;
  bool exists_watched_ = false;
  std::string source_ = "none";
  std::atomic<bool> synced_{false};
  std::atomic<int> state_{0};  // 0 connecting, 1 connected, 2 disconnected, 3 expired
};

}  // namespace webtier::balancer
