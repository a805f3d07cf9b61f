// The parts of zk::Client every implementation shares.
#include "webtier/common/zk_client.h"

namespace webtier::zk {

Status Client::EnsurePath(const std::string& path) {
  if (path.empty() || path.front() != '/') return Status(ErrorCode::kInvalidArgument, "bad znode path: " + path);
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos != path.size() && path[pos] != '/') continue;
    std::string prefix = path.substr(0, pos);
    if (prefix.size() <= 1) continue;
    Status s = Create(prefix, "", kPersistent, nullptr);
    if (!s.ok() && s.code() != ErrorCode::kAlreadyExists) return s;
  }
  return Status::Ok();
}

std::vector<GetResult> Client::GetMany(const std::vector<std::string>& paths, std::vector<Watch> watches) {
  std::vector<GetResult> out(paths.size());
  for (size_t i = 0; i < paths.size(); ++i) {
    Watch w = i < watches.size() ? std::move(watches[i]) : Watch{};
    out[i].status = Get(paths[i], &out[i].data, &out[i].stat, std::move(w));
  }
  return out;
}

}  // namespace webtier::zk
