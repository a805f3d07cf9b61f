// Where the Redis master is: the seam between RedisStore / RedisSubscriber
// and what tells them (a fixed --redis address, or Sentinel: sentinel.h).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "webtier/common/net.h"
#include "webtier/common/status.h"

namespace webtier::cache {

// Implementations are thread-safe; no method blocks on I/O.
class RedisMaster {
 public:
  virtual ~RedisMaster() = default;

  // The current master and its generation, a number that changes whenever
  // the master does (connections opened to an older generation are retired).
  // kUnavailable while no master is known (Sentinel not answering yet).
  virtual Status Current(net::HostPort* address, uint64_t* generation) const = 0;

  // A caller found generation `generation`'s master failing (an I/O error, a
  // READONLY answer, ROLE not master): ask again soon. Stale generations are ignored.
  virtual void Suspect(uint64_t generation) = 0;

  // True when a new connection must check with ROLE that the node is a
  // master before anything is written to it (a master that Sentinel found may
  // have been demoted since).
  virtual bool VerifyRole() const = 0;

  // For /health: "host:port", or "unknown" while none is known.
  std::string Describe() const {
    net::HostPort a;
    uint64_t g = 0;
    return Current(&a, &g).ok() ? a.ToString() : "unknown";
  }
};

// --redis: one address, never changes, never suspected.
class FixedRedisMaster final : public RedisMaster {
 public:
  explicit FixedRedisMaster(net::HostPort address) : address_(std::move(address)) {}
  Status Current(net::HostPort* address, uint64_t* generation) const override {  // cache::RedisMaster
    *address = address_;
    *generation = 1;
    return Status::Ok();
  }
  void Suspect(uint64_t) override {}                 // cache::RedisMaster
  bool VerifyRole() const override { return false; }  // cache::RedisMaster

 private:
  const net::HostPort address_;
};

// Several servers of one replication group, any of which will do (a
// subscriber: PUBLISH reaches the replicas' subscribers too). Starts with the
// first; a suspected one gives way to the next, round and round.
class RotatingRedisMaster final : public RedisMaster {
 public:
  explicit RotatingRedisMaster(std::vector<net::HostPort> addresses) : addresses_(std::move(addresses)) {}
  Status Current(net::HostPort* address, uint64_t* generation) const override {  // cache::RedisMaster
    if (addresses_.empty()) return Status(ErrorCode::kUnavailable, "no Redis address");
    const uint64_t g = generation_.load();
    *address = addresses_[(g - 1) % addresses_.size()];
    *generation = g;
    return Status::Ok();
  }
  void Suspect(uint64_t generation) override {  // cache::RedisMaster
    uint64_t expected = generation;
    generation_.compare_exchange_strong(expected, generation + 1);
  }
  bool VerifyRole() const override { return false; }  // cache::RedisMaster

 private:
  const std::vector<net::HostPort> addresses_;
  std::atomic<uint64_t> generation_{1};
};

}  // namespace webtier::cache
