// Whether a failed attempt to forward a request is tried again on another
// member, and what the failure means for the member and the client: the one
// place the proxy's retry rules live (README "Request handling"). Pure: no
// I/O, no clock; a RetryPolicy is immutable and safe to share.
#pragma once

#include <chrono>
#include <cstddef>
#include <string_view>

#include "webtier/balancer/config.h"
#include "webtier/balancer/upstream/member.h"

namespace webtier::balancer {

// Where and how one attempt failed.
enum class Failure {
  kConnect,              // connect refused, unreachable or timed out: nothing was sent
  kSendTimeout,          // the request (head and buffered body) not taken in time
  kSendReset,            // reset or EOF while sending the request
  kBodyTimeout,          // a part of a streamed body not taken in time
  kBodyReset,            // reset or EOF while streaming the body
  kNoResponse,           // timed out before any byte of a response
  kSlowResponse,         // timed out with the response header begun but not complete
  kResetBeforeResponse,  // reset or EOF before any byte of a response
  kResetMidResponse,     // reset, EOF or a malformed header after some response bytes
  kMemberUnhealthy,      // no response byte yet and the member failed its health checks meanwhile
};

// What the decision depends on besides the failure.
struct Attempt {
  bool idempotent = false;  // IsIdempotent(method): the member acting twice is harmless
  bool replayable = true;   // the body is whole in memory (not streamed)
  int number = 0;           // 0 for the first try
  size_t untried = 0;       // members not tried yet that another attempt could go to
};

// Which warning the failure is worth, besides the counters.
enum class FailureLog {
  kNone,
  kUpstreamTimeout,     // "upstream timeout" {member, target}
  kFailedMidResponse,   // "upstream failed mid-response" {member, err}
};

struct RetryDecision {
  bool retry = false;             // try a member not tried yet (when the load-balancing policy finds one)
  bool eject = false;             // passive ejection of this member
  std::string_view eject_reason;  // for the log; "" = the I/O error's own message
  Outcome outcome = Outcome::kReset;  // counted for the member
  int status = 502;                   // for the client if no later attempt answers
  std::string_view error;             // its JSON error text
  FailureLog log = FailureLog::kNone;
  bool operator==(const RetryDecision&) const = default;
};

class RetryPolicy {
 public:
  // `retries`: extra attempts (negative = 0); `try_timeout_ms`: bound on an
  // attempt that may move on (0 = off); `request_timeout_ms`: every other wait.
  RetryPolicy(int retries, int try_timeout_ms, int request_timeout_ms);
  explicit RetryPolicy(const Config& config)
      : RetryPolicy(config.retries, config.try_timeout_ms, config.request_timeout_ms) {}

  // First try plus --retries.
  int max_attempts() const { return max_attempts_; }

  // True when --try-timeout-ms bounds this attempt: an idempotent request
  // with its body in memory and another attempt and member left. The last
  // attempt waits the whole request timeout.
  bool BoundsTry(const Attempt& attempt) const;
  // True when the attempt may still move to another member before the
  // response begins: idempotent, its body in memory, another attempt and
  // member left. Then a member that turns unhealthy (kMemberUnhealthy) or
  // answers 502/503/504 (RetriesStatus) is left for another.
  bool Movable(const Attempt& attempt) const {
    return attempt.idempotent && attempt.replayable && AttemptLeft(attempt) && attempt.untried > 0;
  }
  // A member's 502, 503 or 504 answer to a Movable attempt is not relayed:
  // the request goes to another member, whose answer the client gets.
  bool RetriesStatus(int status, const Attempt& attempt) const {
    return (status == 502 || status == 503 || status == 504) && Movable(attempt);
  }
  // How long this attempt may wait for the member to take the request and
  // start its response.
  std::chrono::milliseconds AttemptTimeout(const Attempt& attempt) const {
    return BoundsTry(attempt) ? try_timeout_ : request_timeout_;
  }

  // Retries go to members not yet tried, while attempts last: after a failed
  // connect for any method (nothing was sent); after a reset while sending
  // for an idempotent method; after a reset before any response byte for an
  // idempotent method whose body can be sent again; after a bounded try's
  // timeout before any response byte (the member is ejected); after its
  // member failed its health checks before any response byte. Never once a
  // streamed body is under way or a response has begun. Whether a member is
  // left is the load-balancing policy's answer (Pick), asked next.
  RetryDecision Decide(Failure failure, const Attempt& attempt) const;

 private:
  bool AttemptLeft(const Attempt& attempt) const { return attempt.number + 1 < max_attempts_; }

  int max_attempts_;
  std::chrono::milliseconds try_timeout_;
  std::chrono::milliseconds request_timeout_;
};

}  // namespace webtier::balancer
