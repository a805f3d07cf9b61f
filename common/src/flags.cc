// CLI11 glue: environment fallbacks and exit-code policy.
#include "webtier/common/flags.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

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

Status ReadSecretFile(const char* file_flag, const std::string& path, const char* value_flag, std::string* value) {
  if (path.empty()) return Status::Ok();
  if (!value->empty()) return Invalid(file_flag, std::string("given together with ") + value_flag + ": use one");
  std::string secret;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Invalid(file_flag, "cannot read '" + path + "': " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Invalid(file_flag, "cannot read '" + path + "': not a regular file");
  }
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;  // e.g. EISDIR
      ::close(fd);
      return Invalid(file_flag, "cannot read '" + path + "': " + std::strerror(err));
    }
    if (n == 0) break;
    secret.append(buf, static_cast<size_t>(n));
    if (secret.size() > 64 * 1024) {
      ::close(fd);
      return Invalid(file_flag, "'" + path + "' is larger than 64 KiB");
    }
  }
  ::close(fd);
  if (!secret.empty() && secret.back() == '\n') secret.pop_back();
  if (!secret.empty() && secret.back() == '\r') secret.pop_back();
  if (secret.empty()) return Invalid(file_flag, "'" + path + "' is empty");
  if (secret.find_first_of("\r\n") != std::string::npos)
    return Invalid(file_flag, "'" + path + "' holds more than one line");
  *value = std::move(secret);
  return Status::Ok();
}

}  // namespace webtier::flags
