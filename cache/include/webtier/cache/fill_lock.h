// FillLock: the per-key lock a fill leader holds in the shared store, so one
// fetch per key happens across the tier.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "webtier/cache/store.h"
#include "webtier/common/status.h"

namespace webtier::cache {

// A lock in a Store (Store::TryLock / Store::Unlock) under `key`, holding a
// token unique to its taker. Move-only (a moved-from one holds nothing);
// while held() the destructor releases it, so no path out of a fill can
// forget to. The store expires the lock after the `ttl` it was taken with,
// whatever happens here (a dead holder blocks the key only that long); a
// release after that expiry leaves alone a lock someone else has taken since.
// A failed release is not retried: the expiry ends it. Not thread-safe (one
// fill uses it).
class FillLock {
 public:
  // How each store command is run (e.g. behind a circuit breaker that counts
  // failures); empty: the command is run as it is.
  using Guard = std::function<Status(const std::function<Status()>&)>;

  FillLock() = default;  // names no lock and is never held (a place to move one into)
  // `store` must outlive this object. Takes nothing yet (TryTake does).
  FillLock(Store* store, std::string key, std::string token, Guard guard = nullptr);
  ~FillLock();
  FillLock(FillLock&& other) noexcept;
  FillLock& operator=(FillLock&& other) noexcept;  // releases the lock this one held
  FillLock(const FillLock&) = delete;
  FillLock& operator=(const FillLock&) = delete;

  // One attempt (SET NX PX) to take the lock for `ttl`. Ok: held() says
  // whether this call took it (false: someone else holds it). An error: the
  // store could not be asked, and nothing is held. Ok without a command when
  // already held.
  Status TryTake(std::chrono::milliseconds ttl);
  bool held() const { return held_; }
  // Reads `key` and, only when it is absent, takes the lock for `ttl` in the
  // same atomic step (Store::GetOrLock): Ok with `*value` (nothing taken),
  // kNotFound with held() telling whether this call took the lock, or the
  // store's error. Only while not held.
  Status ReadOrTake(const std::string& key, std::chrono::milliseconds ttl, std::string* value);
  // Gives the lock up now, if held (only while the store still has this
  // token under `key`); afterwards held() is false.
  void Release();

  // For a caller that sends the take or the release in one Store::Run with
  // other commands: the op TryTake would send (only while not held) and
  // Taken() with it once run; the op Release would send and Released() once
  // it ran or failed (a failed release ends with the expiry, as above).
  StoreOp TakeOp(std::chrono::milliseconds ttl) const { return StoreOp::TryLock(key_, token_, ttl); }
  void Taken(const StoreOp& op) { held_ = held_ || (op.status.ok() && op.acquired); }
  StoreOp ReleaseOp() const { return StoreOp::Unlock(key_, token_); }
  void Released() { held_ = false; }

 private:
  // Release() for the destructor and move assignment: a release that throws
  // (out of memory) is left to the expiry, like a failed one.
  void ReleaseNoThrow() noexcept;

  Store* store_ = nullptr;
  std::string key_;
  std::string token_;
  Guard guard_;
  bool held_ = false;
};

}  // namespace webtier::cache
