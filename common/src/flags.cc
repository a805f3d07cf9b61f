// CLI11 glue: environment fallbacks and exit-code policy.
#include "webtier/common/flags.h"

#include <cctype>
#include <iostream>
#include <string>

namespace webtier::flags {

void BindEnvironment(CLI::App& app, std::string_view prefix) {
  for (CLI::Option* opt : app.get_options()) {
    const auto& names = opt->get_lnames();
    if (names.empty() || names.front() == "help" || names.front() == "version") continue;
    std::string env(prefix);
    env += '_';
    for (char c : names.front()) env += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    opt->envname(env);
  }
}

namespace {

int ReportError(const CLI::App& app, std::string_view what) {
  std::cerr << app.get_name() << ": error: " << what << "\n"
            << "Run '" << app.get_name() << " --help' for the list of flags.\n";
  return 2;
}

}  // namespace

std::optional<int> Parse(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::CallForVersion& e) {
    std::cout << e.what() << "\n";
    return 0;
  } catch (const CLI::ParseError& e) {
    return ReportError(app, e.what());
  }
  return std::nullopt;
}

Status Invalid(std::string_view flag, std::string_view why) {
  return Status(ErrorCode::kInvalidArgument, std::string(flag) + ": " + std::string(why));
}

int BadValue(const CLI::App& app, const Status& status) { return ReportError(app, status.message()); }

}  // namespace webtier::flags
