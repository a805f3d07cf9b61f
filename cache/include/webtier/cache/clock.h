// Time as the cache sees it: wall-clock milliseconds for record ages (shared
// between nodes through Redis) and a monotonic clock for local timers.
#pragma once

#include <chrono>
#include <cstdint>

namespace webtier::cache {

// Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds since the Unix epoch; stored in records, compared across nodes.
  virtual int64_t UnixMillis() = 0;
  // Monotonic time for cool-downs and deadlines on this node.
  virtual std::chrono::steady_clock::time_point SteadyNow() = 0;
};

// The real clocks. Stateless; one shared instance.
class SystemClock final : public Clock {
 public:
  static SystemClock& Get();
  int64_t UnixMillis() override;                             // cache::Clock
  std::chrono::steady_clock::time_point SteadyNow() override;  // cache::Clock
};

}  // namespace webtier::cache
