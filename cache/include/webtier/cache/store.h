// The seam between the response cache and the shared store behind it (Redis in
// production, an in-memory fake in unit tests).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "webtier/common/status.h"

namespace webtier::cache {

// A fill's writes, made all at once: `value` under every key of `entries`,
// and `member` in every set of `indexes`; each then lives at least `ttl`
// more (a set's expiry is never shortened). Unless a purge came after the
// fill began: a mark in `marks` (Store::MarkPurged) above `since` (the purge
// sequence the fill read before it asked the origin). Then nothing is
// written: the fill's answer may predate the purge. Either way the fill's
// lock `lock_key` is released, when given, as Store::Unlock would.
struct FillWrite {
  std::vector<std::string> entries;
  std::string value;
  std::vector<std::string> indexes;
  std::string member;
  std::chrono::milliseconds ttl{0};
  std::vector<std::string> marks;
  uint64_t since = 0;
  std::string lock_key;  // empty: no lock to release
  std::string token;
};

// The purge sequence a fill reads (as a kGet of kPurgeSeqKey, or through
// GetOrLock) before it asks the origin: 0 when the key is absent.
uint64_t PurgeSeqOf(const Status& read, const std::string& value);

// One command of a Store::Run batch: what to do, and (after Run) how it went.
struct StoreOp {
  enum class Kind { kGet, kPut, kTryLock, kUnlock, kPutFill };

  static StoreOp Get(std::string key) { return {Kind::kGet, std::move(key)}; }
  static StoreOp Put(std::string key, std::string value, std::chrono::milliseconds ttl) {
    return {Kind::kPut, std::move(key), std::move(value), ttl};
  }
  static StoreOp TryLock(std::string key, std::string token, std::chrono::milliseconds ttl) {
    return {Kind::kTryLock, std::move(key), std::move(token), ttl};
  }
  static StoreOp Unlock(std::string key, std::string token) { return {Kind::kUnlock, std::move(key), std::move(token)}; }
  static StoreOp PutFill(FillWrite write) {
    StoreOp op{Kind::kPutFill};
    op.fill = std::move(write);
    return op;
  }

  Kind kind = Kind::kGet;
  std::string key;
  std::string value;  // kPut: the value; kTryLock, kUnlock: the token
  std::chrono::milliseconds ttl{0};
  FillWrite fill;  // kPutFill

  // Filled in by Run: the command's own outcome, as its method would return
  // it (kNotFound for an absent kGet), its value (kGet) and whether it took
  // the lock (kTryLock), or whether it wrote (kPutFill: false when a purge
  // fenced it off). Until it ran: kUnavailable "not run".
  Status status{ErrorCode::kUnavailable, "not run"};
  std::string result;
  bool acquired = false;
  bool written = false;
};

// Every method is thread-safe, blocks for at most the store's own timeouts,
// and reports failures as Status (kUnavailable, kTimeout, kConnectionLoss,
// kInternal); it never throws.
class Store {
 public:
  virtual ~Store() = default;

  // Ok with `*value` set, kNotFound when absent, or an error.
  virtual Status Get(const std::string& key, std::string* value) = 0;
  // Stores `value`, expiring after `ttl` (> 0).
  virtual Status Put(const std::string& key, const std::string& value, std::chrono::milliseconds ttl) = 0;
  // Removes `key`; Ok whether or not it existed.
  virtual Status Delete(const std::string& key) = 0;

  // Sets `key` to `token` only if absent, expiring after `ttl` (SET NX PX).
  // `*acquired` tells whether this call took it.
  virtual Status TryLock(const std::string& key, const std::string& token, std::chrono::milliseconds ttl,
                         bool* acquired) = 0;
  // Reads `key` and, only when it is absent, tries to take the lock
  // `lock_key` for `token` (as TryLock), in one atomic step: either Ok with
  // `*value` set (no lock asked for), or kNotFound with `*acquired` telling
  // whether this call took the lock and `*purge_seq` the purge sequence
  // (see FillWrite). A fill that takes its lock this way knows that no entry
  // was stored before it did.
  virtual Status GetOrLock(const std::string& key, const std::string& lock_key, const std::string& token,
                           std::chrono::milliseconds ttl, std::string* value, bool* acquired,
                           uint64_t* purge_seq) = 0;
  // Deletes `key` only if it still holds `token` (a lock that expired and was
  // taken by someone else is left alone).
  virtual Status Unlock(const std::string& key, const std::string& token) = 0;

  // Broadcasts `message` to every node listening on `channel` (PUBLISH);
  // delivery is best effort.
  virtual Status Publish(const std::string& channel, const std::string& message) = 0;

  // Removes the set at `key` and returns its members (none when absent).
  virtual Status TakeSet(const std::string& key, std::vector<std::string>* members) = 0;

  // Fences off the fills begun before now from writing under `marks`: adds
  // one to the purge sequence (kPurgeSeqKey) and sets each mark to it, for
  // `ttl` (longer than the slowest fill). A purge marks before it deletes.
  virtual Status MarkPurged(const std::vector<std::string>& marks, std::chrono::milliseconds ttl) = 0;
  // See FillWrite: Ok with `*written` false when a purge fenced it off.
  virtual Status PutFill(const FillWrite& write, bool* written) = 0;

  // Runs `ops` in order, each as its own method would, in as few round trips
  // as the store can (Redis: one pipeline on one connection, so a later op
  // sees what an earlier one did). Ok when every op was asked, whatever each
  // answered (see each op's status); an error when the store could not be
  // reached or stopped answering: then any op may or may not have run, and no
  // op's result is set. This default runs them one by one.
  virtual Status Run(std::vector<StoreOp>* ops);
};

}  // namespace webtier::cache
