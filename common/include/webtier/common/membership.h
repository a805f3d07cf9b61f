// What the member writer (webnode::MemberRegistration) and the member reader
// (balancer::MemberRegistry) agree on: where members live in ZooKeeper, how
// their znodes are named, the record they exchange, and the ZooKeeper flags
// both programs take. Pure values and functions; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>

#include "webtier/common/serverset.h"
#include "webtier/common/status.h"
#include "webtier/common/zk_session.h"

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
  // File holding the digest credential "user:password"; empty = anonymous,
  // and the znodes this program creates are open to anyone.
  std::string auth_file;
  // Comma-separated digest:<user>:<base64 sha1 of "user:password"> identities
  // granted ALL on every znode created (besides the creator); needs auth_file.
  std::string admin_acl;

  // Filled by FinalizeZkOptions (never logged): the credential read from
  // auth_file, and the admin identities ("user:hash") from admin_acl.
  std::string credential;
  std::vector<std::string> admin_digests;
};

// Adds --zk, --zk-path, --zk-session-timeout-ms, --zk-auth-file and
// --zk-admin-acl, bound to `*options` (which must outlive parsing).
void AddZkFlags(CLI::App& app, ZkOptions* options);

// Checks what AddZkFlags filled in; the message names the flag, e.g.
// "--zk-path: must be an absolute znode path like /webtier/nodes". Does not
// read the auth file.
Status ValidateZkOptions(const ZkOptions& options);

// ValidateZkOptions, then reads the auth file into `credential` and parses
// admin_acl into `admin_digests`. kInvalidArgument names the flag; the
// message never contains the file's content.
Status FinalizeZkOptions(ZkOptions* options);

// Checks a digest credential "user:password": a user without ':' and a
// password, both non-empty, printable, no whitespace, at most 1024 bytes.
Status ValidateCredential(std::string_view credential);

// The session options of a program from finalized ZkOptions: credential,
// ACL and the audit of the membership path. Without a credential logs, once
// per call, that membership is open to anyone who reaches ZooKeeper.
zk::Session::Options SessionOptions(const ZkOptions& options, std::string component);

}  // namespace webtier::membership
