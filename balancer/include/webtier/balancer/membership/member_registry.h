// Follows the members under the membership path through a zk::Client: lists
// the children with a watch, reads each member with a watch, decodes it as
// serverset JSON and hands the deltas to a MembershipListener (the Pool).
// Invalid members are ignored, logged once and counted. While ZooKeeper is
// unreachable the last known pool stays; on (re)connection everything is
// re-listed and watches re-armed.
//
// Scale: session events and watches only mark work for the registry's own
// thread, which takes everything that arrived together as one batch (one
// listing, one pipelined read of the new or changed members, one delta to
// the listener). The state file is written by a StateFileWriter in the
// background, coalesced, never on the update path.
//
// Threading: the listener is called from the registry thread (and from
// LoadStateFile's caller), one call at a time, with no registry lock held
// that the session's event thread needs. The accessors are thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "webtier/balancer/upstream/member.h"
#include "webtier/balancer/upstream/pool.h"
#include "webtier/balancer/membership/state_file.h"
#include "webtier/common/membership.h"
#include "webtier/common/mutex.h"
#include "webtier/common/status.h"
#include "webtier/common/zk_client.h"

namespace webtier::balancer {

class ProxyMetrics;

class MemberRegistry {
 public:
  struct Options {
    std::string path = std::string(membership::kDefaultPath);
    std::string state_file;                          // empty: no persistence
    std::chrono::milliseconds state_file_interval{200};  // at most one state file write per this long
  };

  // `session`, `listener` and `metrics` (may be null) must outlive this.
  // Registers a session listener: construct before the session starts, and
  // stop the session (or drain its events) before destroying this.
  MemberRegistry(zk::Client& session, Options options, MembershipListener& listener, ProxyMetrics* metrics);
  // Stops the registry thread, then writes the last pool to the state file.
  ~MemberRegistry();
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

  // Blocks until the state file holds what the listener was last given.
  void FlushStateFileForTest();

 private:
  // What one batch read from ZooKeeper.
  struct Batch {
    bool listed = false;                    // `children` is the whole membership
    std::vector<std::string> children;
    std::vector<std::string> keys;          // members read, with `results` in the same order
    std::vector<zk::GetResult> results;
  };

  void OnSessionEvent(zk::Client::Event event) WEBTIER_EXCLUDES(mu_);
  void OnMemberChanged(const std::string& key) WEBTIER_EXCLUDES(mu_);
  void Run() WEBTIER_EXCLUDES(mu_, update_mu_);  // the registry thread
  // Reads one batch: the listing when `relist`, else the `changed` members.
  bool Fetch(bool relist, const std::set<std::string>& changed, Batch* batch);
  // Lists the children, arming the child watch (or the exists watch when the
  // path is missing: then `children` is empty). false on failure.
  bool List(std::vector<std::string>* children);
  void Read(Batch* batch);
  // Folds a batch into the pool and applies it.
  void ApplyBatch(const Batch& batch);
  // Decodes one read; false when the member is gone or invalid. `*keep` is
  // set when the read failed and the known record should stay.
  bool DecodeLocked(const std::string& key, const zk::GetResult& got, MemberRecord* out, bool* keep)
      WEBTIER_REQUIRES(update_mu_);
  // Applies `next` as the whole pool: the delta against current_ to the
  // listener, the pool to the state file writer.
  void ApplyLocked(std::map<std::string, MemberRecord> next) WEBTIER_REQUIRES(update_mu_);
  void Wake() WEBTIER_EXCLUDES(mu_);

  zk::Client& session_;
  const Options options_;
  MembershipListener& listener_;
  ProxyMetrics* metrics_;

  // Work for the registry thread and the watch bookkeeping; never held over I/O.
  mutable Mutex mu_;
  CondVar cv_;
  bool relist_ WEBTIER_GUARDED_BY(mu_) = false;                 // the child list must be read again
  std::set<std::string> changed_ WEBTIER_GUARDED_BY(mu_);       // members whose data watch fired
  std::set<std::string> data_watched_ WEBTIER_GUARDED_BY(mu_);  // keys with an armed data watch
  bool children_watched_ WEBTIER_GUARDED_BY(mu_) = false;
  bool exists_watched_ WEBTIER_GUARDED_BY(mu_) = false;
  uint64_t epoch_ WEBTIER_GUARDED_BY(mu_) = 0;  // bumped when a session's watches are gone
  bool stopping_ WEBTIER_GUARDED_BY(mu_) = false;
  std::string source_ WEBTIER_GUARDED_BY(mu_) = "none";

  // The pool as the listener has it; held while the listener runs.
  Mutex update_mu_ WEBTIER_ACQUIRED_BEFORE(mu_);
  std::map<std::string, MemberRecord> current_ WEBTIER_GUARDED_BY(update_mu_);
  std::map<std::string, std::string> invalid_ WEBTIER_GUARDED_BY(update_mu_);  // key -> data already counted

  std::atomic<size_t> members_{0};
  std::atomic<bool> synced_{false};
  std::atomic<int> state_{0};  // 0 connecting, 1 connected, 2 disconnected, 3 expired
  std::unique_ptr<StateFileWriter> state_writer_;  // null without a state file
  std::thread thread_;
};

}  // namespace webtier::balancer
