// Implementation of the logfmt line writer.
#include "webtier/common/log.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <string>

namespace webtier::log {
namespace {

Level LevelFromEnv() {
  const char* v = std::getenv("WEBTIER_LOG_LEVEL");
  if (v == nullptr) return Level::kInfo;
  std::string_view s(v);
  if (s == "debug") return Level::kDebug;
  if (s == "warn") return Level::kWarn;
  if (s == "error") return Level::kError;
  return Level::kInfo;
}

std::atomic<int>& CurrentLevel() {
  static std::atomic<int> level{static_cast<int>(LevelFromEnv())};
  return level;
}

const char* Name(Level l) {
  switch (l) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
  }
  return "info";
}

}  // namespace

void SetLevel(Level level) { CurrentLevel().store(static_cast<int>(level)); }

bool Enabled(Level level) { return static_cast<int>(level) >= CurrentLevel().load(std::memory_order_relaxed); }

std::string Quote(std::string_view value) {
  // Control bytes (a client's header value may carry an escape sequence or a
  // CR) are written as \xNN, so a value can neither end the line nor act
  // on the terminal that shows it.
  auto control = [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; };
  bool needs = value.empty();
  for (char c : value) {
    if (c == ' ' || c == '"' || c == '=' || control(c)) { needs = true; break; }
  }
  if (!needs) return std::string(value);
  std::string out = "\"";
  for (char c : value) {
    if (c == '"' || c == '\\') { out += '\\'; out += c; }
    else if (c == '\n') out += "\\n";
    else if (control(c)) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", static_cast<unsigned char>(c));
      out += hex;
    } else out += c;
  }
  out += '"';
  return out;
}

std::string UtcTimestamp(std::chrono::system_clock::time_point t) {
  const auto secs = std::chrono::system_clock::to_time_t(t);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char ts[64];
  std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return ts;
}

void Write(Level level, std::string_view component, std::string_view msg, std::string_view fields) {
  if (!Enabled(level)) return;
  const std::string ts = UtcTimestamp(std::chrono::system_clock::now());
  std::string line;
  line.reserve(96 + msg.size() + fields.size());
  line.append("ts=").append(ts).append(" level=").append(Name(level));
  line.append(" component=").append(component).append(" msg=").append(Quote(msg));
  line.append(fields).push_back('\n');
  // One write(2) keeps concurrent lines from interleaving.
  ssize_t rc = ::write(STDERR_FILENO, line.data(), line.size());
  (void)rc;
}

}  // namespace webtier::log
