// Test doubles for the cache's seams: a settable clock and an in-memory store
// with expiry and switchable failure.
#pragma once

#include <atomic>
#include <algorithm>
#include <limits>
#include <map>
#include <set>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "webtier/cache/cache_key.h"
#include "webtier/cache/clock.h"
#include "webtier/cache/store.h"

namespace webtier::cache::testing {

class FakeClock final : public Clock {
 public:
  int64_t UnixMillis() override { return unix_ms_.load(); }  // cache::Clock
  std::chrono::steady_clock::time_point SteadyNow() override {  // cache::Clock
    return std::chrono::steady_clock::time_point(std::chrono::milliseconds(steady_ms_.load()));
  }
  void Advance(std::chrono::milliseconds d) {
    unix_ms_ += d.count();
    steady_ms_ += d.count();
  }

 private:
  std::atomic<int64_t> unix_ms_{1'700'000'000'000};
  std::atomic<int64_t> steady_ms_{1'000'000};
};

// Thread-safe. Expiry follows `clock`. SetDown(true) makes every call fail
// with kUnavailable (like Redis refusing connections).
class MemoryStore final : public Store {
 public:
  explicit MemoryStore(Clock* clock) : clock_(clock) {}

  Status Get(const std::string& key, std::string* value) override {  // cache::Store
    std::lock_guard<std::mutex> lock(mu_);
    Count();
    if (down_) return Down();
    auto it = Live(key);
    if (it == data_.end()) return Status(ErrorCode::kNotFound, key);
    *value = it->second.value;
    return Status::Ok();
  }
  Status Put(const std::string& key, const std::string& value, std::chrono::milliseconds ttl) override {  // cache::Store
    std::lock_guard<std::mutex> lock(mu_);
    Count();
    if (down_) return Down();
    data_[key] = Entry{value, clock_->UnixMillis() + ttl.count()};
    return Status::Ok();
  }
  Status Delete(const std::string& key) override {  // cache::Store
    std::lock_guard<std::mutex> lock(mu_);
    Count();
    if (down_) return Down();
    data_.erase(key);
    return Status::Ok();
  }
  Status TryLock(const std::string& key, const std::string& token, std::chrono::milliseconds ttl,
                 bool* acquired) override {  // cache::Store
    std::lock_guard<std::mutex> lock(mu_);
    Count();
    if (down_) return Down();
    *acquired = TakeIfFree(key, token, ttl);
    return Status::Ok();
  }
  Status GetOrLock(const std::string& key, const std::string& lock_key, const std::string& token,
                   std::chrono::milliseconds ttl, std::string* value, bool* acquired,
                   uint64_t* purge_seq) override {  // cache::Store
    std::lock_guard<std::mutex> lock(mu_);
    Count();
    *acquired = false;
    *purge_seq = 0;
    if (down_) return Down();
    if (auto it = Live(key); it != data_.end()) {
      *value = it->second.value;
      return Status::Ok();
    }
    *purge_seq = SeqOf(kPurgeSeqKey);
    *acquired = TakeIfFree(lock_key, token, ttl);
    return Status(ErrorCode::kNotFound, key);
  }
  Status Unlock(const std::string& key, const std::string& token) override {  // cache::Store
    std::lock_guard<std::mutex> lock(mu_);
    Count();
    if (down_) return Down();
    auto it = Live(key);
    if (it != data_.end() && it->second.value == token) data_.erase(it);
    return Status::Ok();
  }

  Status Publish(const std::string& channel, const std::string& message) override {  // cache::Store
    std::lock_guard<std::mutex> lock(mu_);
    Count();
    if (down_) return Down();
    published_.push_back(channel + " " + message);
    return Status::Ok();
  }

  Status TakeSet(const std::string& key, std::vector<std::string>* members) override {  // cache::Store
    std::lock_guard<std::mutex> lock(mu_);
    Count();
    if (down_) return Down();
    members->clear();
    auto it = sets_.find(key);
    if (it == sets_.end()) return Status::Ok();
    if (it->second.expires_at_ms > clock_->UnixMillis()) members->assign(it->second.members.begin(), it->second.members.end());
    sets_.erase(it);
    return Status::Ok();
  }

  Status MarkPurged(const std::vector<std::string>& marks, std::chrono::milliseconds ttl) override {  // cache::Store
    std::lock_guard<std::mutex> lock(mu_);
    Count();
    if (down_) return Down();
    const std::string seq = std::to_string(SeqOf(kPurgeSeqKey) + 1);
    data_[kPurgeSeqKey] = Entry{seq, std::numeric_limits<int64_t>::max()};
    for (const auto& m : marks) data_[m] = Entry{seq, clock_->UnixMillis() + ttl.count()};
    return Status::Ok();
  }
  Status PutFill(const FillWrite& write, bool* written) override {  // cache::Store
    std::lock_guard<std::mutex> lock(mu_);
    Count();
    *written = false;
    if (down_) return Down();
    if (!write.lock_key.empty()) {
      auto it = Live(write.lock_key);
      if (it != data_.end() && it->second.value == write.token) data_.erase(it);
    }
    for (const auto& m : write.marks) {
      if (Live(m) != data_.end() && SeqOf(m) > write.since) return Status::Ok();
    }
    const int64_t expiry = clock_->UnixMillis() + write.ttl.count();
    for (const auto& k : write.entries) data_[k] = Entry{write.value, expiry};
    for (const auto& k : write.indexes) {
      auto& set = sets_[k];
      set.members.insert(write.member);
      set.expires_at_ms = std::max(set.expires_at_ms, expiry);
    }
    *written = true;
    return Status::Ok();
  }

  std::vector<std::string> published() {
    std::lock_guard<std::mutex> lock(mu_);
    return published_;
  }
  void SetDown(bool down) {
    std::lock_guard<std::mutex> lock(mu_);
    down_ = down;
  }
  void Raw(const std::string& key, const std::string& value) {
    std::lock_guard<std::mutex> lock(mu_);
    data_[key] = Entry{value, clock_->UnixMillis() + 3'600'000};
  }
  bool Contains(const std::string& key) {
    std::lock_guard<std::mutex> lock(mu_);
    return Live(key) != data_.end();
  }
  int calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }
  // How many calls came from `thread`.
  int calls_from(std::thread::id thread) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = calls_by_thread_.find(thread);
    return it == calls_by_thread_.end() ? 0 : it->second;
  }
  // What a networked store would pay: each call a round trip, a whole Run one.
  Status Run(std::vector<StoreOp>* ops) override {  // cache::Store
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++runs_;
      batched_ += static_cast<int>(ops->size());
    }
    return Store::Run(ops);
  }
  int round_trips() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_ - batched_ + runs_;
  }

 private:
  struct Entry {
    std::string value;
    int64_t expires_at_ms;
  };
  struct Set {
    std::set<std::string> members;
    int64_t expires_at_ms = 0;
  };
  std::map<std::string, Set> sets_;  // guarded by mu_
  int runs_ = 0;                      // guarded by mu_
  std::map<std::thread::id, int> calls_by_thread_;  // guarded by mu_
  // One call, with mu_ held.
  void Count() {
    ++calls_;
    ++calls_by_thread_[std::this_thread::get_id()];
  }
  int batched_ = 0;                   // guarded by mu_: ops handed to Run
  static Status Down() { return Status(ErrorCode::kUnavailable, "store down"); }
  // SET NX PX, with mu_ held.
  bool TakeIfFree(const std::string& key, const std::string& token, std::chrono::milliseconds ttl) {
    if (Live(key) != data_.end()) return false;
    data_[key] = Entry{token, clock_->UnixMillis() + ttl.count()};
    return true;
  }
  // A number kept as a string (the purge sequence, a mark), with mu_ held: 0 when absent.
  uint64_t SeqOf(const std::string& key) {
    auto it = Live(key);
    return it == data_.end() ? 0 : std::stoull(it->second.value);
  }
  std::map<std::string, Entry>::iterator Live(const std::string& key) {
    auto it = data_.find(key);
    if (it != data_.end() && it->second.expires_at_ms <= clock_->UnixMillis()) {
      data_.erase(it);
      return data_.end();
    }
    return it;
  }

  Clock* clock_;
  std::mutex mu_;
  std::map<std::string, Entry> data_;
  bool down_ = false;
  int calls_ = 0;
  std::vector<std::string> published_;
};

}  // namespace webtier::cache::testing
