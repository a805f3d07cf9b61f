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
    std::cerr << app.get_name() << ": error: " << e.what() << "\n"
              << "Run '" << app.get_name() << " --help' for the list of flags.\n";
    return 2;
  }
  return std::nullopt;
}

}  // namespace webtier::flags
