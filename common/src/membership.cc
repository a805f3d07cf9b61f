// Membership naming, path checks and the shared ZooKeeper flags.
#include "webtier/common/membership.h"

#include <fstream>
#include <sstream>

#include "webtier/common/flags.h"
#include "webtier/common/log.h"

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
  app.add_option("--zk-auth-file", options->auth_file,
                 "file holding the ZooKeeper digest credential user:password; znodes created get ALL for it and "
                 "READ for anyone (unset: anonymous, znodes open to anyone)");
  app.add_option("--zk-admin-acl", options->admin_acl,
                 "comma-separated digest:<user>:<base64 sha1 of user:password> identities also given ALL on every "
                 "znode created (needs --zk-auth-file)");
}

namespace {

constexpr size_t kMaxCredentialBytes = 1024;

// 28 characters of base64 ending in '=': the 20 bytes of a SHA-1.
bool IsSha1Base64(std::string_view s) {
  if (s.size() != 28 || s.back() != '=') return false;
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    const char c = s[i];
    const bool b64 = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
    if (!b64) return false;
  }
  return true;
}

// A user name as ZooKeeper's digest scheme takes it: no ':' and nothing
// outside printable ASCII.
bool ValidUser(std::string_view user) {
  if (user.empty()) return false;
  for (char c : user) {
    if (c <= ' ' || c > '~' || c == ':' || c == ',') return false;
  }
  return true;
}

// --zk-admin-acl: "digest:user:hash[,digest:user:hash...]" -> "user:hash" ids.
Status ParseAdminAcl(std::string_view list, std::vector<std::string>* out) {
  out->clear();
  if (list.empty()) return Status::Ok();
  for (size_t start = 0; start <= list.size();) {
    size_t comma = list.find(',', start);
    if (comma == std::string_view::npos) comma = list.size();
    std::string_view entry = list.substr(start, comma - start);
    constexpr std::string_view kScheme = "digest:";
    const size_t colon = entry.rfind(':');
    if (entry.substr(0, kScheme.size()) != kScheme || colon < kScheme.size() ||
        !ValidUser(entry.substr(kScheme.size(), colon - kScheme.size())) || !IsSha1Base64(entry.substr(colon + 1)))
      return flags::Invalid("--zk-admin-acl", "each entry must be digest:<user>:<base64 sha1 of user:password>");
    out->emplace_back(entry.substr(kScheme.size()));
    start = comma + 1;
  }
  return Status::Ok();
}

}  // namespace

Status ValidateCredential(std::string_view credential) {
  if (credential.size() > kMaxCredentialBytes) return Status(ErrorCode::kInvalidArgument, "credential too long");
  const size_t colon = credential.find(':');
  if (colon == std::string_view::npos || !ValidUser(credential.substr(0, colon)) || colon + 1 == credential.size())
    return Status(ErrorCode::kInvalidArgument, "must hold one line user:password (user without ':')");
  for (char c : credential.substr(colon + 1)) {
    if (c <= ' ' || c > '~') return Status(ErrorCode::kInvalidArgument, "password must be printable, without spaces");
  }
  return Status::Ok();
}

Status ValidateZkOptions(const ZkOptions& options) {
  if (options.connect.empty()) return flags::Invalid("--zk", "must not be empty");
  if (Status s = ValidatePath(options.path); !s.ok()) return flags::Invalid("--zk-path", s.message());
  if (options.session_timeout_ms < 1000 || options.session_timeout_ms > 600000)
    return flags::Invalid("--zk-session-timeout-ms", "must be within 1000..600000");
  if (!options.admin_acl.empty() && options.auth_file.empty())
    return flags::Invalid("--zk-admin-acl", "needs --zk-auth-file (without a credential znodes are open to anyone)");
  std::vector<std::string> admins;
  return ParseAdminAcl(options.admin_acl, &admins);
}

Status FinalizeZkOptions(ZkOptions* options) {
  if (Status s = ValidateZkOptions(*options); !s.ok()) return s;
  if (Status s = ParseAdminAcl(options->admin_acl, &options->admin_digests); !s.ok()) return s;
  options->credential.clear();
  if (options->auth_file.empty()) return Status::Ok();
  std::ifstream in(options->auth_file, std::ios::binary);
  if (!in) return flags::Invalid("--zk-auth-file", "cannot read " + options->auth_file);
  std::string text(kMaxCredentialBytes + 3, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) return flags::Invalid("--zk-auth-file", "cannot read " + options->auth_file);
  text.resize(static_cast<size_t>(in.gcount()));
  // One line; a final newline (as editors and `echo` write) is not part of it.
  if (!text.empty() && text.back() == '\n') text.pop_back();
  if (!text.empty() && text.back() == '\r') text.pop_back();
  if (Status s = ValidateCredential(text); !s.ok())
    return flags::Invalid("--zk-auth-file", options->auth_file + ": " + s.message());
  options->credential = std::move(text);
  return Status::Ok();
}

zk::Session::Options SessionOptions(const ZkOptions& options, std::string component) {
  if (options.credential.empty()) {
    log::Warn(component, "no --zk-auth-file: membership is open to anyone who reaches ZooKeeper "
                         "(znodes created without ACL: any client can add, change or delete members)")
        .kv("zk", options.connect);
  }
  return zk::Session::Options{.connect = options.connect,
                              .session_timeout_ms = options.session_timeout_ms,
                              .component = std::move(component),
                              .digest_auth = options.credential,
                              .admin_digests = options.admin_digests,
                              .audit_path = options.path};
}

}  // namespace webtier::membership
