// Membership naming, path checks and the shared ZooKeeper flags.
#include "webtier/common/membership.h"

#include "webtier/common/flags.h"

namespace webtier::membership {

bool IsMemberName(std::string_view child) { return child.substr(0, kMemberPrefix.size()) == kMemberPrefix; }

Status ValidatePath(std::string_view path) {
  const bool ok = path.size() >= 2 && path.front() == '/' && path.back() != '/' &&
                  path.find("//") == std::string_view::npos;
  if (ok) return Status::Ok();
  return Status(ErrorCode::kInvalidArgument, "must be an absolute znode path like " + std::string(kDefaultPath));
}

void AddZkFlags(CLI::App& app, ZkOptions* options) {
  app.add_option("--zk", options->connect, "ZooKeeper connect string (comma-separated host:port)")
      ->capture_default_str();
  app.add_option("--zk-path", options->path, "membership path")->capture_default_str();
  app.add_option("--zk-session-timeout-ms", options->session_timeout_ms, "ZooKeeper session timeout")
      ->capture_default_str();
}

Status ValidateZkOptions(const ZkOptions& options) {
  if (options.connect.empty()) return flags::Invalid("--zk", "must not be empty");
  if (Status s = ValidatePath(options.path); !s.ok()) return flags::Invalid("--zk-path", s.message());
  if (options.session_timeout_ms < 1000 || options.session_timeout_ms > 600000)
    return flags::Invalid("--zk-session-timeout-ms", "must be within 1000..600000");
  return Status::Ok();
}

}  // namespace webtier::membership
