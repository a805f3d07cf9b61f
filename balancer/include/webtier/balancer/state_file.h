// The last known pool on disk, so a balancer that starts while ZooKeeper is
// down still has members: {"version":1,"members":[{"znode":..,"member":{serverset}}]}.
#pragma once

#include <string>
#include <vector>

#include "webtier/balancer/host.h"
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

}  // namespace webtier::balancer
