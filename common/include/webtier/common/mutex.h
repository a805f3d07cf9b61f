// The project's locks: std::mutex and std::shared_mutex with the capability
// attributes of thread_annotations.h, which libstdc++'s own types lack, so
// clang can check every WEBTIER_GUARDED_BY member against the lock actually held.
//
//   Mutex mu_;
//   int hits_ WEBTIER_GUARDED_BY(mu_) = 0;
//   { MutexLock l(&mu_); ++hits_; }
//   while (!ready_) cv_.Wait(&mu_);   // a loop, not a predicate lambda: the
//                                     // analysis sees the condition read
//                                     // under the lock
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <shared_mutex>

#include "webtier/common/thread_annotations.h"

namespace webtier {

class WEBTIER_CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() WEBTIER_ACQUIRE() { mu_.lock(); }
  void Unlock() WEBTIER_RELEASE() { mu_.unlock(); }
  bool TryLock() WEBTIER_TRY_ACQUIRE(true) { return mu_.try_lock(); }

 private:
  friend class CondVar;
  std::mutex mu_;
};

// Holds a Mutex for its scope.
class WEBTIER_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex* mu) WEBTIER_ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() WEBTIER_RELEASE() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

// Holds a Mutex for its scope, with the option to let it go early (for a
// notify or a callback that must run unlocked).
class WEBTIER_SCOPED_CAPABILITY ReleasableMutexLock {
 public:
  explicit ReleasableMutexLock(Mutex* mu) WEBTIER_ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~ReleasableMutexLock() WEBTIER_RELEASE() {
    if (held_) mu_->Unlock();
  }
  void Release() WEBTIER_RELEASE() {
    held_ = false;
    mu_->Unlock();
  }
  ReleasableMutexLock(const ReleasableMutexLock&) = delete;
  ReleasableMutexLock& operator=(const ReleasableMutexLock&) = delete;

 private:
  Mutex* const mu_;
  bool held_ = true;
};

// A condition variable for a Mutex the caller holds. Wait* may wake
// spuriously: callers loop on their condition.
class CondVar {
 public:
  void Wait(Mutex* mu) WEBTIER_REQUIRES(mu) {
    std::unique_lock<std::mutex> l(mu->mu_, std::adopt_lock);
    cv_.wait(l);
    l.release();
  }
  // False once `deadline` has passed.
  template <typename Clock, typename Duration>
  bool WaitUntil(Mutex* mu, const std::chrono::time_point<Clock, Duration>& deadline) WEBTIER_REQUIRES(mu) {
    std::unique_lock<std::mutex> l(mu->mu_, std::adopt_lock);
    const bool woken = cv_.wait_until(l, deadline) == std::cv_status::no_timeout;
    l.release();
    return woken;
  }
  template <typename Rep, typename Period>
  bool WaitFor(Mutex* mu, const std::chrono::duration<Rep, Period>& timeout) WEBTIER_REQUIRES(mu) {
    return WaitUntil(mu, std::chrono::steady_clock::now() + timeout);
  }
  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

// A readers-writer lock: many ReaderLocks or one WriterLock.
class WEBTIER_CAPABILITY("shared_mutex") SharedMutex {
 public:
  SharedMutex() = default;
  SharedMutex(const SharedMutex&) = delete;
  SharedMutex& operator=(const SharedMutex&) = delete;

  void Lock() WEBTIER_ACQUIRE() { mu_.lock(); }
  void Unlock() WEBTIER_RELEASE() { mu_.unlock(); }
  void LockShared() WEBTIER_ACQUIRE_SHARED() { mu_.lock_shared(); }
  void UnlockShared() WEBTIER_RELEASE_SHARED() { mu_.unlock_shared(); }

 private:
  std::shared_mutex mu_;
};

class WEBTIER_SCOPED_CAPABILITY WriterLock {
 public:
  explicit WriterLock(SharedMutex* mu) WEBTIER_ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~WriterLock() WEBTIER_RELEASE() { mu_->Unlock(); }
  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;

 private:
  SharedMutex* const mu_;
};

class WEBTIER_SCOPED_CAPABILITY ReaderLock {
 public:
  explicit ReaderLock(SharedMutex* mu) WEBTIER_ACQUIRE_SHARED(mu) : mu_(mu) { mu_->LockShared(); }
  ~ReaderLock() WEBTIER_RELEASE() { mu_->UnlockShared(); }
  ReaderLock(const ReaderLock&) = delete;
  ReaderLock& operator=(const ReaderLock&) = delete;

 private:
  SharedMutex* const mu_;
};

}  // namespace webtier
