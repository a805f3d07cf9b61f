// In-process request coalescing: concurrent misses for one key share a single
// fill. Callback-based, so no thread blocks waiting for another.
#pragma once

#include <functional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "webtier/common/mutex.h"
#include "webtier/common/thread_annotations.h"

namespace webtier::cache {

// Thread-safe. Join() registers interest in `key`; the first caller becomes
// the leader and must eventually call Complete(key, result) exactly once, which
// hands `result` to every callback registered in between (leader's included),
// on the completing thread, outside the lock. Callbacks must not call Join for
// the same key synchronously expecting to join the finished flight (they start
// a new one).
template <typename Result>
class SingleFlight {
 public:
  using Callback = std::function<void(const Result&)>;

  // True when the caller is the leader. `callback` may be empty (a background
  // refresh that only wants the flight to happen).
  bool Join(const std::string& key, Callback callback) WEBTIER_EXCLUDES(mu_) {
    MutexLock lock(&mu_);
    auto [it, inserted] = flights_.try_emplace(key);
    if (callback) it->second.push_back(std::move(callback));
    return inserted;
  }

  // True when a flight for `key` is in progress.
  bool InFlight(const std::string& key) const WEBTIER_EXCLUDES(mu_) {
    MutexLock lock(&mu_);
    return flights_.count(key) != 0;
  }

  // Ends the flight; returns how many callbacks ran.
  size_t Complete(const std::string& key, const Result& result) WEBTIER_EXCLUDES(mu_) {
    std::vector<Callback> waiters;
    {
      MutexLock lock(&mu_);
      auto it = flights_.find(key);
      if (it == flights_.end()) return 0;
      waiters = std::move(it->second);
      flights_.erase(it);
    }
    for (auto& callback : waiters) callback(result);
    return waiters.size();
  }

 private:
  mutable Mutex mu_;
  std::unordered_map<std::string, std::vector<Callback>> flights_ WEBTIER_GUARDED_BY(mu_);
};

}  // namespace webtier::cache
