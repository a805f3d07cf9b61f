// What the member writer (webnode::MemberRegistration) and the member reader
// (balancer::MemberRegistry) agree on: where members live in ZooKeeper, how
// their znodes are named, the record they exchange, and the ZooKeeper flags
// both programs take. Pure values and functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

#include <CLI/CLI.hpp>

#include "webtier/common/serverset.h"
#include "webtier/common/status.h"

namespace webtier::membership {

// Member znodes are ephemeral sequential children named member_<10 digits>.
inline constexpr std::string_view kMemberPrefix = "member_";
// The membership path both programs use unless told otherwise.
inline constexpr std::string_view kDefaultPath = "/webtier/nodes";

// True for a child name written by a MemberRegistration.
bool IsMemberName(std::string_view child);

// A member as stored under the membership path: the znode name is its identity.
struct MemberRecord {
  std::string key;  // znode name, e.g. member_0000000007
  serverset::Member member;
  bool operator==(const MemberRecord&) const = default;
};

// An absolute znode path other than the root, without a trailing slash or an
// empty segment ("/webtier/nodes"). kInvalidArgument otherwise.
Status ValidatePath(std::string_view path);

// The ZooKeeper settings of both programs, with their defaults.
struct ZkOptions {
  std::string connect = "127.0.0.1:2181";       // comma-separated host:port list
  std::string path = std::string(kDefaultPath);  // membership path
  int session_timeout_ms = 6000;                 // asked of ZooKeeper; the server may clamp it
};

// Adds --zk, --zk-path and --zk-session-timeout-ms, bound to `*options`
// (which must outlive parsing).
void AddZkFlags(CLI::App& app, ZkOptions* options);

// Checks what AddZkFlags filled in; the message names the flag, e.g.
// "--zk-path: must be an absolute znode path like /webtier/nodes".
Status ValidateZkOptions(const ZkOptions& options);

}  // namespace webtier::membership
