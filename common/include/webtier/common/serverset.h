// The member record stored in ZooKeeper: Twitter serverset JSON, readable by
// Prometheus serverset_sd_configs, Finagle, Aurora and synapse.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "webtier/common/status.h"

namespace webtier::serverset {

struct Member {
  std::string id;          // optional on decode; defaults to host:port
  std::string host;        // required, non-empty
  uint16_t port = 0;       // required, 1..65535
  std::string zone;        // optional
  uint32_t weight = 100;   // optional, 1..65535
  std::string version;     // optional
  int shard = 0;           // optional
  // additionalEndpoints.admin: the port of the member's admin listener on its
  // host (webnode's /metrics and purges); 0 = none published.
  uint16_t admin_port = 0;

  std::string Address() const;  // host:port (IPv6 bracketed)
  bool operator==(const Member&) const = default;
};

// {"serviceEndpoint":{...},"additionalEndpoints":{"http":{...}[,"admin":{...}]},"status":"ALIVE",...}
std::string Encode(const Member& member);

// Accepts any valid serverset member (extra fields ignored). Rejects, with a
// kInvalidArgument naming the problem: bad JSON, not an object, missing or
// empty host, port missing/not an integer/out of range, status not "ALIVE",
// weight not an integer in range. Never throws.
Status Decode(std::string_view json, Member* out);

}  // namespace webtier::serverset
