// Keeps exactly one ephemeral sequential member znode (serverset JSON) for
// this process under the membership path while its ZooKeeper session lives,
// across connection loss (the znode is kept, never duplicated) and session
// expiry (a new znode under the new session), until Deregister().
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "webtier/common/serverset.h"
#include "webtier/common/zk_session.h"

namespace webtier::webnode {

class MemberRegistration {
 public:
  // `member.host` empty means: auto-detect it as the local address of the
  // connection to ZooKeeper (when the node listens on every interface).
  // `session` must outlive this object. Call before session.Start().
  MemberRegistration(zk::Session& session, std::string zk_path, serverset::Member member,
                     prometheus::Registry& registry);
  ~MemberRegistration();
  MemberRegistration(const MemberRegistration&) = delete;
  MemberRegistration& operator=(const MemberRegistration&) = delete;

  // Starts the background reconciler thread.
  void Start();
  // Deletes the znode now and never registers again (draining). Idempotent.
  Status Deregister();

  bool registered() const { return registered_.load(); }
  std::string znode() const;

 private:
  void OnSessionEvent(zk::Session::Event e);
  void Run();
  // Makes ZooKeeper hold exactly one member znode owned by our session.
  Status Reconcile();

  zk::Session& session_;
  const std::string path_;
  serverset::Member member_;
  const bool auto_host_;

  prometheus::Gauge& registered_gauge_;
  prometheus::Counter& expirations_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool dirty_ = true;
  bool stopping_ = false;
  std::string znode_;  // full path of our member znode, empty when none
  std::atomic<bool> registered_{false};
  std::thread thread_;
};

}  // namespace webtier::webnode
