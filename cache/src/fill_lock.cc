// FillLock: a lock in the shared store, released when its owner goes.
#include "webtier/cache/fill_lock.h"

#include <utility>

namespace webtier::cache {

FillLock::FillLock(Store* store, std::string key, std::string token, Guard guard)
    : store_(store), key_(std::move(key)), token_(std::move(token)), guard_(std::move(guard)) {}

FillLock::~FillLock() { ReleaseNoThrow(); }

FillLock::FillLock(FillLock&& other) noexcept
    : store_(std::exchange(other.store_, nullptr)),
      key_(std::move(other.key_)),
      token_(std::move(other.token_)),
      guard_(std::move(other.guard_)),
      held_(std::exchange(other.held_, false)) {}

FillLock& FillLock::operator=(FillLock&& other) noexcept {
  if (this != &other) {
    ReleaseNoThrow();
    store_ = std::exchange(other.store_, nullptr);
    key_ = std::move(other.key_);
    token_ = std::move(other.token_);
    guard_ = std::move(other.guard_);
    held_ = std::exchange(other.held_, false);
  }
  return *this;
}

Status FillLock::TryTake(std::chrono::milliseconds ttl) {
  if (held_) return Status::Ok();
  bool acquired = false;
  auto take = [&] { return store_->TryLock(key_, token_, ttl, &acquired); };
  Status s = guard_ ? guard_(take) : take();
  held_ = s.ok() && acquired;
  return s;
}

Status FillLock::ReadOrTake(const std::string& key, std::chrono::milliseconds ttl, std::string* value) {
  bool acquired = false;
  auto read = [&] { return store_->GetOrLock(key, key_, token_, ttl, value, &acquired); };
  Status s = guard_ ? guard_(read) : read();
  held_ = s.code() == ErrorCode::kNotFound && acquired;
  return s;
}

void FillLock::Release() {
  if (!held_) return;
  held_ = false;
  auto unlock = [&] { return store_->Unlock(key_, token_); };
  // A failure is the guard's to count; the lock then ends with its expiry.
  (guard_ ? guard_(unlock) : unlock()).IgnoreError();
}

void FillLock::ReleaseNoThrow() noexcept {
  try {
    Release();
  } catch (...) {
  }
}

}  // namespace webtier::cache
