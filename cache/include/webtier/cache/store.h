// The seam between the response cache and the shared store behind it (Redis in
// production, an in-memory fake in unit tests).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "webtier/common/status.h"

namespace webtier::cache {

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
  // Deletes `key` only if it still holds `token` (a lock that expired and was
  // taken by someone else is left alone).
  virtual Status Unlock(const std::string& key, const std::string& token) = 0;

  // Broadcasts `message` to every node listening on `channel` (PUBLISH);
  // delivery is best effort.
  virtual Status Publish(const std::string& channel, const std::string& message) = 0;

  // Adds `member` (no newline in it) to the set at `key`, which then lives at
  // least `ttl` more (an expiry is never shortened). Tag index of Surrogate-Key.
  virtual Status AddToSet(const std::string& key, const std::string& member, std::chrono::milliseconds ttl) = 0;
  // Removes the set at `key` and returns its members (none when absent).
  virtual Status TakeSet(const std::string& key, std::vector<std::string>* members) = 0;
};

}  // namespace webtier::cache
