// State file encoding, the atomic write and the coalescing background writer.
#include "webtier/balancer/membership/state_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "webtier/common/log.h"

#include <nlohmann/json.hpp>

namespace webtier::balancer {

using nlohmann::json;

std::string FormatState(const std::vector<MemberRecord>& members) {
  json list = json::array();
  for (const auto& m : members) {
    list.push_back({{"znode", m.key}, {"member", json::parse(serverset::Encode(m.member))}});
  }
  return json{{"version", 1}, {"members", list}}.dump(1) + "\n";
}

Status ParseState(std::string_view text, std::vector<MemberRecord>* members, int* invalid) {
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Status(ErrorCode::kCorrupt, "state file is not a JSON object");
  auto list = j.find("members");
  if (list == j.end() || !list->is_array()) return Status(ErrorCode::kCorrupt, "state file has no members array");
  members->clear();
  for (const auto& e : *list) {
    MemberRecord rec;
    bool ok = e.is_object();
    if (ok) {
      auto key = e.find("znode");
      auto m = e.find("member");
      ok = key != e.end() && key->is_string() && !key->get_ref<const std::string&>().empty() && m != e.end() &&
           serverset::Decode(m->dump(), &rec.member).ok();
      if (ok) rec.key = key->get<std::string>();
    }
    if (ok) members->push_back(std::move(rec));
    else if (invalid) ++*invalid;
  }
  return Status::Ok();
}

Status LoadStateFile(const std::string& path, std::vector<MemberRecord>* members, int* invalid) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return Status(ErrorCode::kNotFound, "no state file at " + path);
    return Status(ErrorCode::kUnavailable, "cannot read " + path + ": " + std::strerror(errno));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  Status s = ParseState(ss.str(), members, invalid);
  if (!s.ok()) return Status(s.code(), s.message() + " (" + path + ")");
  return s;
}

Status SaveStateFile(const std::string& path, const std::vector<MemberRecord>& members) {
  const std::string data = FormatState(members);
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  // A fresh file, never through a link someone placed at the temporary name
  // (the directory may be writable by others): O_EXCL with O_NOFOLLOW. The
  // rename then replaces the state file's name itself, not what a link there
  // points to.
  ::unlink(tmp.c_str());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
  if (fd < 0) return Status(ErrorCode::kUnavailable, "cannot create " + tmp + ": " + std::strerror(errno));
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return Status(ErrorCode::kUnavailable, "cannot write " + tmp + ": " + std::strerror(err));
    }
    off += static_cast<size_t>(n);
  }
  ::fsync(fd);
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return Status(ErrorCode::kUnavailable, "cannot rename to " + path + ": " + std::strerror(err));
  }
  return Status::Ok();
}

StateFileWriter::StateFileWriter(std::string path, std::chrono::milliseconds interval)
    : path_(std::move(path)), interval_(interval), thread_([this] { Run(); }) {}

StateFileWriter::~StateFileWriter() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  cv_.SignalAll();
  thread_.join();
  MutexLock lock(&mu_);
  if (pending_) WritePending();  // the last pool survives a clean shutdown
}

void StateFileWriter::Save(std::vector<MemberRecord> members) {
  {
    MutexLock lock(&mu_);
    pending_ = std::move(members);  // an older pending version is superseded
  }
  cv_.SignalAll();
}

void StateFileWriter::Flush() {
  MutexLock lock(&mu_);
  while ((pending_ || writing_) && !stopping_) cv_.Wait(&mu_);
}

void StateFileWriter::Run() {
  MutexLock lock(&mu_);
  while (true) {
    while (!stopping_ && !pending_.has_value()) cv_.Wait(&mu_);
    if (stopping_) return;
    // Coalesce: wait out the interval since the last write, taking newer versions.
    const auto due = last_write_ + interval_;
    while (!stopping_ && cv_.WaitUntil(&mu_, due)) {
    }
    if (stopping_) return;
    if (pending_) WritePending();
  }
}

void StateFileWriter::WritePending() {
  std::vector<MemberRecord> members = std::move(*pending_);
  pending_.reset();
  writing_ = true;
  mu_.Unlock();
  Status s = SaveStateFile(path_, members);
  if (!s.ok()) log::Warn("members", "saving state file failed").kv("err", s.ToString());
  mu_.Lock();
  writing_ = false;
  last_write_ = std::chrono::steady_clock::now();
  cv_.SignalAll();
}

}  // namespace webtier::balancer
