// Structured logging: one line per event on stderr, logfmt style
// (`ts=... level=warn component=zk msg="..." key=value`), safe from any thread.
#pragma once

#include <chrono>
#include <sstream>
#include <string>
#include <string_view>

namespace webtier::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Lines below this level are dropped. Default kInfo; WEBTIER_LOG_LEVEL
// (debug|info|warn|error) in the environment overrides it at first use.
void SetLevel(Level level);
bool Enabled(Level level);

// Writes one complete line atomically (a single write(2)); `fields` is an
// already formatted ` key=value ...` tail (may be empty).
void Write(Level level, std::string_view component, std::string_view msg,
           std::string_view fields = {});

// `t` as RFC 3339 UTC with milliseconds, as the lines' ts= carry it:
// 2026-12-05T17:30:00.123Z.
std::string UtcTimestamp(std::chrono::system_clock::time_point t);

// Quotes a value for logfmt when it has spaces, quotes or is empty.
std::string Quote(std::string_view value);

// Collects `key=value` pairs and writes the line when destroyed:
//   log::Line(log::Level::kWarn, "redis", "command failed").kv("err", e);
class Line {
 public:
  Line(Level level, std::string_view component, std::string_view msg)
      : level_(level), component_(component), msg_(msg), enabled_(Enabled(level)) {}
  Line(const Line&) = delete;
  Line& operator=(const Line&) = delete;
  ~Line() {
    if (enabled_) Write(level_, component_, msg_, fields_.str());
  }

  template <typename T>
  Line& kv(std::string_view key, const T& value) {
    if (!enabled_) return *this;
    std::ostringstream v;
    v << value;
    fields_ << ' ' << key << '=' << Quote(v.str());
    return *this;
  }

 private:
  Level level_;
  std::string component_;
  std::string msg_;
  bool enabled_;
  std::ostringstream fields_;
};

inline Line Debug(std::string_view c, std::string_view m) { return Line(Level::kDebug, c, m); }
inline Line Info(std::string_view c, std::string_view m) { return Line(Level::kInfo, c, m); }
inline Line Warn(std::string_view c, std::string_view m) { return Line(Level::kWarn, c, m); }
inline Line Error(std::string_view c, std::string_view m) { return Line(Level::kError, c, m); }

}  // namespace webtier::log
