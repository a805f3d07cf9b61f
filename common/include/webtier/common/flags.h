// Command-line parsing shared by the programs: every flag can also come from
// the environment (PREFIX_FLAG_NAME), the flag wins; bad flags exit 2.
#pragma once

#include <CLI/CLI.hpp>

#include <optional>
#include <string>
#include <string_view>

#include "webtier/common/status.h"

namespace webtier::flags {

// Gives every long option of `app` an environment fallback:
// --zk-session-timeout-ms -> <prefix>_ZK_SESSION_TIMEOUT_MS.
// Call after all options are added.
void BindEnvironment(CLI::App& app, std::string_view prefix);

// Parses argv. Returns nullopt when the program should go on; otherwise the
// exit code: 0 after --help/--version, 2 after printing a one-line error and
// a hint to stderr for an unknown flag or a bad value.
std::optional<int> Parse(CLI::App& app, int argc, char** argv);

// What a program's own validation (its Finalize) returns for a bad value:
// kInvalidArgument "<flag>: <why>", e.g. "--listen: invalid address 'x'".
Status Invalid(std::string_view flag, std::string_view why);

// For a value the program's own validation (its Finalize) rejected: prints
// "<program>: error: <status message>" and the same hint as Parse() to
// stderr, and returns the exit code, 2.
int BadValue(const CLI::App& app, const Status& status);

// A secret given as a file (`file_flag`, path `path`) instead of on the
// command line (`value_flag`, where ps shows it): read into *value. Both
// given is an error (which one counts would be a guess). One trailing newline
// (LF or CRLF) is dropped, as `echo secret > file` leaves one; more than one
// line, an empty file or one over 64 KiB is refused. Messages name the flags
// and the path, never the content. An empty `path` leaves *value alone.
Status ReadSecretFile(const char* file_flag, const std::string& path, const char* value_flag, std::string* value);

}  // namespace webtier::flags
