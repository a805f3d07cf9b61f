// The one error type of the project. C library errors (ZooKeeper return codes,
// hiredis replies, errno) are translated into it in one place each.
#pragma once

#include <string>
#include <string_view>
#include <utility>

namespace webtier {

enum class ErrorCode {
  kOk = 0,
  kNotFound,          // the thing asked for does not exist (znode, cache key)
  kAlreadyExists,     // create of something that exists
  kConnectionLoss,    // transient: the link dropped, the operation may or may not have happened
  kSessionExpired,    // the ZooKeeper session is gone; ephemerals and watches with it
  kTimeout,           // no answer in time
  kUnavailable,       // not connected / circuit open / nothing to talk to
  kInvalidArgument,   // the caller's input is wrong (bad flag, bad JSON, bad path)
  kCorrupt,           // stored data failed to decode
  kInternal,          // anything else
};

std::string_view ErrorCodeName(ErrorCode code);

// A value type: either ok, or a code with a human-readable message. A Status
// must be looked at: a call that drops one does not compile without a warning
// (-Werror in CI). Where dropping it is the decision, say so with
// IgnoreError() and a comment on why the failure is already dealt with.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }

  bool ok() const { return code_ == ErrorCode::kOk; }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "connection_loss: create /webtier/nodes/member_: connection loss"
  std::string ToString() const;
  // Drops this status on purpose (the failure was counted or logged where it
  // happened, or nothing can be done about it).
  void IgnoreError() const {}

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

}  // namespace webtier
