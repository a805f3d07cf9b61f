// HTTP-date parsing and formatting without locale or time-zone state.
#include "webtier/cache/http_date.h"

#include <array>
#include <cstdio>
#include <ctime>

#include "webtier/cache/message.h"

namespace webtier::cache {
namespace {

constexpr std::array<std::string_view, 7> kDays = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr std::array<std::string_view, 7> kLongDays = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                                        "Thursday", "Friday", "Saturday"};
constexpr std::array<std::string_view, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

// Reads exactly `n` digits.
bool Digits(std::string_view* s, size_t n, int* out) {
  if (s->size() < n) return false;
  int v = 0;
  for (size_t i = 0; i < n; ++i) {
    char c = (*s)[i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  s->remove_prefix(n);
  return true;
}

bool Literal(std::string_view* s, std::string_view lit) {
  if (s->size() < lit.size() || !EqualsIgnoreCase(s->substr(0, lit.size()), lit)) return false;
  s->remove_prefix(lit.size());
  return true;
}

template <size_t N>
bool OneOf(std::string_view* s, const std::array<std::string_view, N>& names, int* index) {
  for (size_t i = 0; i < N; ++i) {
    // The long day names share prefixes with nothing else, but "Sun" must not match "Sunday".
    if (s->size() >= names[i].size() && EqualsIgnoreCase(s->substr(0, names[i].size()), names[i])) {
      *index = static_cast<int>(i);
      s->remove_prefix(names[i].size());
      return true;
    }
  }
  return false;
}

bool Time(std::string_view* s, int* h, int* m, int* sec) {
  return Digits(s, 2, h) && Literal(s, ":") && Digits(s, 2, m) && Literal(s, ":") && Digits(s, 2, sec) && *h < 24 &&
         *m < 60 && *sec <= 60;
}

std::optional<int64_t> ToUnix(int year, int month, int day, int h, int m, int sec) {
  if (month < 0 || month > 11 || day < 1 || day > 31) return std::nullopt;
  return DaysFromCivil(year, static_cast<unsigned>(month + 1), static_cast<unsigned>(day)) * 86400 + h * 3600 +
         m * 60 + sec;
}

}  // namespace

std::optional<int64_t> ParseHttpDate(std::string_view s, int64_t now_unix_s) {
  int wd = 0, day = 0, month = 0, year = 0, h = 0, m = 0, sec = 0;
  std::string_view t = s;
  // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
  if (OneOf(&t, kDays, &wd) && Literal(&t, ", ") && Digits(&t, 2, &day) && Literal(&t, " ") &&
      OneOf(&t, kMonths, &month) && Literal(&t, " ") && Digits(&t, 4, &year) && Literal(&t, " ") &&
      Time(&t, &h, &m, &sec) && Literal(&t, " GMT") && t.empty()) {
    return ToUnix(year, month, day, h, m, sec);
  }
  // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
  t = s;
  if (OneOf(&t, kLongDays, &wd) && Literal(&t, ", ") && Digits(&t, 2, &day) && Literal(&t, "-") &&
      OneOf(&t, kMonths, &month) && Literal(&t, "-") && Digits(&t, 2, &year) && Literal(&t, " ") &&
      Time(&t, &h, &m, &sec) && Literal(&t, " GMT") && t.empty()) {
    const int64_t now = now_unix_s != 0 ? now_unix_s : static_cast<int64_t>(std::time(nullptr));
    const int64_t now_year = 1970 + now / 31556952;
    int full = 2000 + year;
    if (full > now_year + 50) full -= 100;
    return ToUnix(full, month, day, h, m, sec);
  }
  // asctime: Sun Nov  6 08:49:37 1994
  t = s;
  if (OneOf(&t, kDays, &wd) && Literal(&t, " ") && OneOf(&t, kMonths, &month) && Literal(&t, " ")) {
    if (Literal(&t, " ")) {
      if (!Digits(&t, 1, &day)) return std::nullopt;
    } else if (!Digits(&t, 2, &day)) {
      return std::nullopt;
    }
    if (Literal(&t, " ") && Time(&t, &h, &m, &sec) && Literal(&t, " ") && Digits(&t, 4, &year) && t.empty()) {
      return ToUnix(year, month, day, h, m, sec);
    }
  }
  return std::nullopt;
}

std::string FormatHttpDate(int64_t unix_s) {
  int64_t days = unix_s >= 0 ? unix_s / 86400 : (unix_s - 86399) / 86400;
  int64_t secs = unix_s - days * 86400;
  // civil_from_days
  int64_t z = days + 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned mo = mp < 10 ? mp + 3 : mp - 9;
  y += mo <= 2;
  const int wd = static_cast<int>(((days % 7) + 11) % 7);  // 1970-01-01 was a Thursday
  char buf[40];
  std::snprintf(buf, sizeof buf, "%s, %02u %s %04lld %02d:%02d:%02d GMT", std::string(kDays[wd]).c_str(), d,
                std::string(kMonths[mo - 1]).c_str(), static_cast<long long>(y), static_cast<int>(secs / 3600),
                static_cast<int>(secs / 60 % 60), static_cast<int>(secs % 60));
  return buf;
}

}  // namespace webtier::cache
