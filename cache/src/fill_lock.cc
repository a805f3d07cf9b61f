// FillLock: a lock in the shared store, released when its owner goes.
#include "webtier/cache/fill_lock.h"

#include <algorithm>
#include <utility>

namespace webtier::cache {

bool OutcomeUnknown(const Status& s) {
  return s.code() == ErrorCode::kTimeout || s.code() == ErrorCode::kConnectionLoss;
}

void OrphanLocks::Add(Entry entry) {
  MutexLock lock(&mu_);
  if (entries_.size() >= capacity_) entries_.pop_front();
  entries_.push_back(std::move(entry));
  count_.store(entries_.size(), std::memory_order_relaxed);
}

std::vector<OrphanLocks::Entry> OrphanLocks::Take(std::chrono::steady_clock::time_point now,
                                                  const std::string* lock_key) {
  std::vector<Entry> out;
  MutexLock lock(&mu_);
  auto keep = std::remove_if(entries_.begin(), entries_.end(), [&](Entry& e) {
    if (e.expiry <= now) return true;  // the store has let it go by itself
    if (lock_key != nullptr && e.lock_key != *lock_key) return false;
    out.push_back(std::move(e));
    return true;
  });
  entries_.erase(keep, entries_.end());
  count_.store(entries_.size(), std::memory_order_relaxed);
  return out;
}

FillLock::FillLock(Store* store, std::string key, std::string token, Guard guard, Orphaned orphaned)
    : store_(store),
      key_(std::move(key)),
      token_(std::move(token)),
      guard_(std::move(guard)),
      orphaned_(std::move(orphaned)) {}

FillLock::~FillLock() { ReleaseNoThrow(); }

FillLock::FillLock(FillLock&& other) noexcept
    : store_(std::exchange(other.store_, nullptr)),
      key_(std::move(other.key_)),
      token_(std::move(other.token_)),
      guard_(std::move(other.guard_)),
      orphaned_(std::move(other.orphaned_)),
      held_(std::exchange(other.held_, false)),
      purge_seq_(other.purge_seq_) {}

FillLock& FillLock::operator=(FillLock&& other) noexcept {
  if (this != &other) {
    ReleaseNoThrow();
    store_ = std::exchange(other.store_, nullptr);
    key_ = std::move(other.key_);
    token_ = std::move(other.token_);
    guard_ = std::move(other.guard_);
    orphaned_ = std::move(other.orphaned_);
    held_ = std::exchange(other.held_, false);
    purge_seq_ = other.purge_seq_;
  }
  return *this;
}

Status FillLock::TryTake(std::chrono::milliseconds ttl) {
  if (held_) return Status::Ok();
  bool acquired = false;
  auto take = [&] { return store_->TryLock(key_, token_, ttl, &acquired); };
  Status s = guard_ ? guard_(take) : take();
  held_ = s.ok() && acquired;
  if (OutcomeUnknown(s)) Orphan();
  return s;
}

Status FillLock::ReadOrTake(const std::string& key, std::chrono::milliseconds ttl, std::string* value) {
  bool acquired = false;
  auto read = [&] { return store_->GetOrLock(key, key_, token_, ttl, value, &acquired, &purge_seq_); };
  Status s = guard_ ? guard_(read) : read();
  held_ = s.code() == ErrorCode::kNotFound && acquired;
  if (OutcomeUnknown(s)) Orphan();
  return s;
}

void FillLock::Taken(const StoreOp& op, const Status& run) {
  held_ = held_ || (op.status.ok() && op.acquired);
  if (!held_ && OutcomeUnknown(run)) Orphan();
}

void FillLock::Release() {
  if (!held_) return;
  held_ = false;
  auto unlock = [&] { return store_->Unlock(key_, token_); };
  // A failure is the guard's to count, and the lock is left to the orphans.
  if (!(guard_ ? guard_(unlock) : unlock()).ok()) Orphan();
}

void FillLock::Released(const StoreOp& op) {
  held_ = false;
  if (!op.status.ok()) Orphan();  // not run, or run and refused: the lock may still be there
}

void FillLock::Orphan() const {
  if (orphaned_) orphaned_(key_, token_);
}

void FillLock::ReleaseNoThrow() noexcept {
  try {
    Release();
  } catch (...) {
  }
}

}  // namespace webtier::cache
