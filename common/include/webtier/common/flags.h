// Command-line parsing shared by the programs: every flag can also come from
// the environment (PREFIX_FLAG_NAME), the flag wins; bad flags exit 2.
#pragma once

#include <CLI/CLI.hpp>

#include <optional>
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

}  // namespace webtier::flags
