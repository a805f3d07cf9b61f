// FillLock: the per-key lock a fill leader holds in the shared store, so one
// fetch per key happens across the tier.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "webtier/cache/store.h"
#include "webtier/common/mutex.h"
#include "webtier/common/status.h"
#include "webtier/common/thread_annotations.h"

namespace webtier::cache {

// True when a store command failed in a way that leaves its effect unknown:
// it timed out or the connection broke after it was sent, so the store may
// still run it (a stalled Redis runs what it had queued once it resumes).
bool OutcomeUnknown(const Status& s);

// Fill locks this node may hold without a fill behind them, to be released as
// soon as the store answers again: a take whose outcome is unknown (the store
// may take it later, for a token nobody waits on) and a release that failed.
// Left alone, each blocks its key on every node until the lock expires
// (CacheOptions::lock_ttl), with requests waiting on a fill that never comes.
// Bounded: past `capacity` the oldest is dropped (its expiry still ends it);
// an entry is dropped once its lock would have expired anyway. Thread-safe.
class OrphanLocks {
 public:
  struct Entry {
    std::string lock_key;
    std::string token;
    std::chrono::steady_clock::time_point expiry;
  };

  explicit OrphanLocks(size_t capacity = 4096) : capacity_(capacity) {}

  void Add(Entry entry) WEBTIER_EXCLUDES(mu_);
  // One relaxed load: the hot path asks this after every store command.
  bool empty() const { return count_.load(std::memory_order_relaxed) == 0; }
  // Removes and returns the entries whose lock has not expired by `now`;
  // with `lock_key`, only that key's (the rest stay).
  std::vector<Entry> Take(std::chrono::steady_clock::time_point now, const std::string* lock_key = nullptr)
      WEBTIER_EXCLUDES(mu_);

 private:
  const size_t capacity_;
  Mutex mu_;
  std::deque<Entry> entries_ WEBTIER_GUARDED_BY(mu_);  // oldest first
  std::atomic<size_t> count_{0};                       // entries_.size(), read without the lock
};

// A lock in a Store (Store::TryLock / Store::Unlock) under `key`, holding a
// token unique to its taker. Move-only (a moved-from one holds nothing);
// while held() the destructor releases it, so no path out of a fill can
// forget to. The store expires the lock after the `ttl` it was taken with,
// whatever happens here (a dead holder blocks the key only that long); a
// release after that expiry leaves alone a lock someone else has taken since.
// A take whose outcome is unknown and a failed release are handed to
// `orphaned` (when given), whose owner releases them once the store answers
// again (OrphanLocks). Not thread-safe (one fill uses it).
class FillLock {
 public:
  // How each store command is run (e.g. behind a circuit breaker that counts
  // failures); empty: the command is run as it is.
  using Guard = std::function<Status(const std::function<Status()>&)>;
  // Told of a lock (its key and token) the store may hold with no fill behind it.
  using Orphaned = std::function<void(const std::string& lock_key, const std::string& token)>;

  FillLock() = default;  // names no lock and is never held (a place to move one into)
  // `store` must outlive this object. Takes nothing yet (TryTake does).
  FillLock(Store* store, std::string key, std::string token, Guard guard = nullptr, Orphaned orphaned = nullptr);
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
  // kNotFound with held() telling whether this call took the lock (and
  // purge_seq() set), or the store's error. Only while not held.
  Status ReadOrTake(const std::string& key, std::chrono::milliseconds ttl, std::string* value);
  // The purge sequence the fill read before it asked the origin (FillWrite::since):
  // from ReadOrTake, or set by a caller that read it in its own batch.
  uint64_t purge_seq() const { return purge_seq_; }
  void set_purge_seq(uint64_t seq) { purge_seq_ = seq; }
  // Gives the lock up now, if held (only while the store still has this
  // token under `key`); afterwards held() is false.
  void Release();

  // For a caller that sends the take or the release in one Store::Run with
  // other commands: the op TryTake would send (only while not held) and
  // Taken() with it and the Run's status once run; the op Release would send
  // and Released() once it ran or failed (a failed release is orphaned).
  StoreOp TakeOp(std::chrono::milliseconds ttl) const { return StoreOp::TryLock(key_, token_, ttl); }
  void Taken(const StoreOp& op, const Status& run);
  StoreOp ReleaseOp() const { return StoreOp::Unlock(key_, token_); }
  void Released(const StoreOp& op);

 private:
  void Orphan() const;
  // Release() for the destructor and move assignment: a release that throws
  // (out of memory) is left to the expiry, like a failed one.
  void ReleaseNoThrow() noexcept;

  Store* store_ = nullptr;
  std::string key_;
  std::string token_;
  Guard guard_;
  Orphaned orphaned_;
  bool held_ = false;
  uint64_t purge_seq_ = 0;
};

}  // namespace webtier::cache
