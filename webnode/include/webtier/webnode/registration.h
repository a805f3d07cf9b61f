// Keeps exactly one ephemeral sequential member znode (serverset JSON) for
// this process under the membership path while its ZooKeeper session lives,
// across connection loss (the znode is kept, never duplicated) and session
// expiry (a new znode under the new session), until Deregister().
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "webtier/common/mutex.h"
#include "webtier/common/serverset.h"
#include "webtier/common/thread_annotations.h"
#include "webtier/common/zk_client.h"

namespace webtier::webnode {

class MemberRegistration {
 public:
  // `member.host` empty means: auto-detect it as the local address of the
  // connection to ZooKeeper (when the node listens on every interface).
  // `session` must outlive this object. Construct before the session starts.
  MemberRegistration(zk::Client& session, std::string zk_path, serverset::Member member,
                     prometheus::Registry& registry);
  ~MemberRegistration();
  MemberRegistration(const MemberRegistration&) = delete;
  MemberRegistration& operator=(const MemberRegistration&) = delete;

  // Starts the background reconciler thread.
  void Start();
  // Deletes the znode now and never registers again (draining). Idempotent.
  Status Deregister() WEBTIER_EXCLUDES(mu_);

  bool registered() const { return registered_.load(); }
  std::string znode() const WEBTIER_EXCLUDES(mu_);

  // How long a failed attempt waits before the next one (default 500 ms).
  void SetRetryDelayForTest(std::chrono::milliseconds delay) WEBTIER_EXCLUDES(mu_) {
    MutexLock l(&mu_);
    retry_delay_ = delay;
  }

 private:
  void OnSessionEvent(zk::Client::Event e) WEBTIER_EXCLUDES(mu_);
  void Run() WEBTIER_EXCLUDES(mu_);
  // Makes ZooKeeper hold exactly one member znode owned by our session.
  Status Reconcile() WEBTIER_EXCLUDES(mu_);
  // The member znodes under path_ that session `sid` owns (a create that
  // returned connection loss may have succeeded).
  Status FindOwn(int64_t sid, std::vector<std::string>* mine);
  // Creates our member znode; `*created` is its full path.
  Status CreateOwn(std::string* created);
  // Arms the watch that makes a delete by someone else re-create `znode`;
  // kNotFound when it is gone.
  Status WatchOwn(const std::string& znode, zk::NodeStat* stat);
  void MarkDirty() WEBTIER_EXCLUDES(mu_);

  zk::Client& session_;
  const std::string path_;
  serverset::Member member_;
  const bool auto_host_;

  prometheus::Gauge& registered_gauge_;
  prometheus::Counter& expirations_;

  mutable Mutex mu_;
  CondVar cv_;
  bool dirty_ WEBTIER_GUARDED_BY(mu_) = true;
  bool stopping_ WEBTIER_GUARDED_BY(mu_) = false;
  std::string znode_ WEBTIER_GUARDED_BY(mu_);  // full path of our member znode, empty when none
  std::atomic<bool> registered_{false};
  std::chrono::milliseconds retry_delay_ WEBTIER_GUARDED_BY(mu_){500};
  std::thread thread_;
};

}  // namespace webtier::webnode
