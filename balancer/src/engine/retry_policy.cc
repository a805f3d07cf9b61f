// The proxy's retry rules (see retry_policy.h).
#include "webtier/balancer/engine/retry_policy.h"

#include <algorithm>

namespace webtier::balancer {

namespace {

constexpr std::string_view kRefused = "member refused the connection";
constexpr std::string_view kClosed = "member closed the connection";
constexpr std::string_view kTimedOut = "upstream timeout";

RetryDecision Reset(bool retryable) { return {retryable, false, "", Outcome::kReset, 502, kClosed}; }
RetryDecision Timeout(FailureLog log = FailureLog::kNone) { return {false, false, "", Outcome::kTimeout, 504, kTimedOut, log}; }
// A stalled member (frozen, overloaded): give up on it and ask another. The
// request is idempotent, so the member acting on it late is harmless.
RetryDecision AbandonTry(std::string_view why) { return {true, true, why, Outcome::kTimeout, 504, kTimedOut}; }

}  // namespace

RetryPolicy::RetryPolicy(int retries, int try_timeout_ms, int request_timeout_ms)
    : max_attempts_(1 + std::max(0, retries)), try_timeout_(try_timeout_ms), request_timeout_(request_timeout_ms) {}

bool RetryPolicy::BoundsTry(const Attempt& attempt) const {
  return Movable(attempt) && try_timeout_.count() > 0 && try_timeout_ < request_timeout_;
}

RetryDecision RetryPolicy::Decide(Failure failure, const Attempt& attempt) const {
  RetryDecision d;
  switch (failure) {
    case Failure::kConnect:
      // Nothing was sent: safe to try another member whatever the method.
      d = {true, true, "", Outcome::kConnectFailure, 502, kRefused};
      break;
    case Failure::kSendTimeout:
      d = BoundsTry(attempt) ? AbandonTry("request not taken within the try timeout") : Timeout();
      break;
    case Failure::kSendReset:
      // A streamed body too: what had arrived is still whole in memory.
      d = Reset(attempt.idempotent);
      break;
    case Failure::kBodyTimeout:
      d = Timeout();
      break;
    case Failure::kBodyReset:
      d = Reset(false);
      break;
    case Failure::kNoResponse:
      d = BoundsTry(attempt) ? AbandonTry("no response within the try timeout") : Timeout(FailureLog::kUpstreamTimeout);
      break;
    case Failure::kSlowResponse:
      d = Timeout(FailureLog::kUpstreamTimeout);
      break;
    case Failure::kResetBeforeResponse:
      // The member cannot have answered: no byte of a response.
      d = Reset(attempt.idempotent && attempt.replayable);
      if (!d.retry) d.log = FailureLog::kFailedMidResponse;
      break;
    case Failure::kResetMidResponse:
      d = Reset(false);
      d.log = FailureLog::kFailedMidResponse;
      break;
    case Failure::kMemberUnhealthy:
      // Already out of the pool by its checks: no ejection on top.
      d = {attempt.idempotent && attempt.replayable, false, "", Outcome::kTimeout, 504, kTimedOut};
      break;
  }
  d.retry = d.retry && AttemptLeft(attempt);
  return d;
}

}  // namespace webtier::balancer
