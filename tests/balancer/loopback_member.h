// The membership record of a test member listening on 127.0.0.1, for the
// in-process proxy tests that feed a Pool directly (no ZooKeeper).
#pragma once

#include <cstdint>
#include <string>

#include "webtier/balancer/upstream/pool.h"

namespace webtier::balancer {

inline MemberRecord LoopbackMember(const std::string& id, uint16_t port) {
  MemberRecord r;
  r.key = "member_" + id;
  r.member.id = id;
  r.member.host = "127.0.0.1";
  r.member.port = port;
  return r;
}

}  // namespace webtier::balancer
