// The real clocks.
#include "webtier/cache/clock.h"

namespace webtier::cache {

SystemClock& SystemClock::Get() {
  static SystemClock clock;
  return clock;
}

int64_t SystemClock::UnixMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::chrono::steady_clock::time_point SystemClock::SteadyNow() { return std::chrono::steady_clock::now(); }

}  // namespace webtier::cache
