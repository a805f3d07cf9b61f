// Command-line parsing shared by the programs: every flag can also come from
// the environment (PREFIX_FLAG_NAME), the flag wins; bad flags exit 2.
#pragma once

#include <CLI/CLI.hpp>

#include <optional>
#include <string_view>

namespace webtier::flags {

// Gives every long option of `app` an environment fallback:
// --zk-session-timeout-ms -> <prefix>_ZK_SESSION_TIMEOUT_MS.
// Call after all options are added.
void BindEnvironment(CLI::App& app, std::string_view prefix);

// Parses argv. Returns nullopt when the program should go on; otherwise the
// exit code: 0 after --help/--version, 2 after printing a one-line error and
// a hint to stderr for an unknown flag or a bad value.
std::optional<int> Parse(CLI::App& app, int argc, char** argv);

}  // namespace webtier::flags
