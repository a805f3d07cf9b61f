// The last known pool on disk, so a balancer that starts while ZooKeeper is
// down still has members: {"version":1,"members":[{"znode":..,"member":{serverset}}]}.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "webtier/balancer/upstream/member.h"
#include "webtier/common/mutex.h"
#include "webtier/common/status.h"

namespace webtier::balancer {

// Writes atomically (temp file in the same directory, fsync, rename): a crash
// leaves the old file or the new one, never half of one.
Status SaveStateFile(const std::string& path, const std::vector<MemberRecord>& members);

// Reads the file; invalid entries are skipped and counted in `*invalid` (may
// be null). kNotFound when the file does not exist, kCorrupt when it is not
// the expected JSON.
Status LoadStateFile(const std::string& path, std::vector<MemberRecord>* members, int* invalid = nullptr);

// The same decoding from a string (the fuzz target's entry point).
Status ParseState(std::string_view text, std::vector<MemberRecord>* members, int* invalid);
std::string FormatState(const std::vector<MemberRecord>& members);

// Saves the pool in the background so that membership updates never wait for
// the disk: Save() hands over the latest members and returns; a writer thread
// writes the newest at most once per `interval` (SaveStateFile: fsync and
// rename kept), skipping the versions superseded meanwhile. The destructor
// writes what is still pending. Thread-safe.
class StateFileWriter {
 public:
  StateFileWriter(std::string path, std::chrono::milliseconds interval);
  ~StateFileWriter();
  StateFileWriter(const StateFileWriter&) = delete;
  StateFileWriter& operator=(const StateFileWriter&) = delete;

  void Save(std::vector<MemberRecord> members) WEBTIER_EXCLUDES(mu_);
  // Blocks until everything handed over so far is on disk.
  void Flush() WEBTIER_EXCLUDES(mu_);

 private:
  void Run() WEBTIER_EXCLUDES(mu_);
  // Writes pending_, letting mu_ go while the file is written.
  void WritePending() WEBTIER_REQUIRES(mu_);

  const std::string path_;
  const std::chrono::milliseconds interval_;
  Mutex mu_;
  CondVar cv_;
  std::optional<std::vector<MemberRecord>> pending_ WEBTIER_GUARDED_BY(mu_);
  bool writing_ WEBTIER_GUARDED_BY(mu_) = false;
  bool stopping_ WEBTIER_GUARDED_BY(mu_) = false;
  std::chrono::steady_clock::time_point last_write_ WEBTIER_GUARDED_BY(mu_){};
  std::thread thread_;
};

}  // namespace webtier::balancer
