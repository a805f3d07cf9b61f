// Policy names as they appear on the command line and in /status.
#include "webtier/balancer/config.h"

namespace webtier::balancer {

std::string_view PolicyName(PolicyKind kind) {
  switch (kind) {
    case PolicyKind::kRoundRobin: return "round_robin";
    case PolicyKind::kWeightedRoundRobin: return "weighted_round_robin";
    case PolicyKind::kLeastRequest: return "least_request";
    case PolicyKind::kConsistentHash: return "consistent_hash";
  }
  return "round_robin";
}

std::optional<PolicyKind> ParsePolicy(std::string_view name) {
  for (auto k : {PolicyKind::kRoundRobin, PolicyKind::kWeightedRoundRobin, PolicyKind::kLeastRequest,
                 PolicyKind::kConsistentHash}) {
    if (PolicyName(k) == name) return k;
  }
  return std::nullopt;
}

}  // namespace webtier::balancer
