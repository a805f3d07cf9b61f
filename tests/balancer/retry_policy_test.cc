// The retry rules as a table: which failures are tried again on another
// member, for which methods and bodies, on which attempts; what each one
// reports, counts and ejects.
#include "webtier/balancer/engine/retry_policy.h"

#include <gtest/gtest.h>

namespace webtier::balancer {

// Found by gtest through ADL: failures print the decision, not its bytes.
void PrintTo(const RetryDecision& d, std::ostream* os) {
  *os << "{retry=" << d.retry << " eject=" << d.eject << " reason=\"" << d.eject_reason
      << "\" outcome=" << OutcomeName(d.outcome) << " status=" << d.status << " error=\"" << d.error
      << "\" log=" << static_cast<int>(d.log) << "}";
}

namespace {

using namespace std::chrono_literals;

constexpr Attempt kGet{.idempotent = true, .replayable = true, .number = 0, .untried = 2};
constexpr Attempt kPost{.idempotent = false, .replayable = true, .number = 0, .untried = 2};
constexpr Attempt kStreamedPut{.idempotent = true, .replayable = false, .number = 0, .untried = 2};

Attempt Number(Attempt a, int number, size_t untried) {
  a.number = number;
  a.untried = untried;
  return a;
}

// --retries 2, --try-timeout-ms 500, --request-timeout-ms 30000.
const RetryPolicy kPolicy(2, 500, 30000);
// The same without a try timeout.
const RetryPolicy kUnbounded(2, 0, 30000);

// The decisions, spelled out: {retry, eject, eject_reason, outcome, status, error, log}.
constexpr std::string_view kClosed = "member closed the connection";
constexpr std::string_view kTimedOut = "upstream timeout";
const RetryDecision kConnectRetried{true, true, "", Outcome::kConnectFailure, 502, "member refused the connection"};
const RetryDecision kResetRetried{true, false, "", Outcome::kReset, 502, kClosed};
const RetryDecision kResetFinal{false, false, "", Outcome::kReset, 502, kClosed};
const RetryDecision kResetMidResponse{false, false, "", Outcome::kReset, 502, kClosed, FailureLog::kFailedMidResponse};
const RetryDecision kTimeoutFinal{false, false, "", Outcome::kTimeout, 504, kTimedOut};
const RetryDecision kTimeoutLogged{false, false, "", Outcome::kTimeout, 504, kTimedOut, FailureLog::kUpstreamTimeout};

TEST(RetryPolicyTest, AttemptsAreTheFirstTryPlusRetries) {
  EXPECT_EQ(kPolicy.max_attempts(), 3);
  EXPECT_EQ(RetryPolicy(0, 0, 1000).max_attempts(), 1);
  EXPECT_EQ(RetryPolicy(-4, 0, 1000).max_attempts(), 1);
}

TEST(RetryPolicyTest, AFailedConnectIsRetriedForAnyMethodAndEjectsTheMember) {
  for (const Attempt& a : {kGet, kPost, kStreamedPut}) EXPECT_EQ(kPolicy.Decide(Failure::kConnect, a), kConnectRetried);
}

TEST(RetryPolicyTest, NothingIsRetriedOnTheLastAttempt) {
  for (Failure f : {Failure::kConnect, Failure::kSendReset, Failure::kResetBeforeResponse}) {
    EXPECT_TRUE(kPolicy.Decide(f, Number(kGet, 1, 1)).retry);
    EXPECT_FALSE(kPolicy.Decide(f, Number(kGet, 2, 5)).retry);
  }
  EXPECT_FALSE(RetryPolicy(0, 0, 1000).Decide(Failure::kConnect, kGet).retry);
}

TEST(RetryPolicyTest, AResetWhileSendingIsRetriedOnlyForIdempotentMethods) {
  EXPECT_EQ(kPolicy.Decide(Failure::kSendReset, kGet), kResetRetried);
  // The part of a streamed body sent so far is still whole in memory.
  EXPECT_EQ(kPolicy.Decide(Failure::kSendReset, kStreamedPut), kResetRetried);
  EXPECT_EQ(kPolicy.Decide(Failure::kSendReset, kPost), kResetFinal);
}

TEST(RetryPolicyTest, AResetBeforeAnyResponseByteIsRetriedOnlyWhenTheRequestCanBeSentAgain) {
  EXPECT_EQ(kPolicy.Decide(Failure::kResetBeforeResponse, kGet), kResetRetried);
  EXPECT_EQ(kPolicy.Decide(Failure::kResetBeforeResponse, kPost), kResetMidResponse);
  EXPECT_EQ(kPolicy.Decide(Failure::kResetBeforeResponse, kStreamedPut), kResetMidResponse);
  // Out of attempts: not retried, but not worth the mid-response warning.
  EXPECT_EQ(kPolicy.Decide(Failure::kResetBeforeResponse, Number(kGet, 2, 0)), kResetFinal);
}

TEST(RetryPolicyTest, AResponseCutShortIsNeverRetried) {
  for (const Attempt& a : {kGet, kPost, kStreamedPut}) {
    EXPECT_EQ(kPolicy.Decide(Failure::kResetMidResponse, a), kResetMidResponse);
  }
}

TEST(RetryPolicyTest, AStreamedBodyThatFailsIsNeverRetried) {
  EXPECT_EQ(kPolicy.Decide(Failure::kBodyReset, kStreamedPut), kResetFinal);
  EXPECT_EQ(kPolicy.Decide(Failure::kBodyTimeout, kStreamedPut), kTimeoutFinal);
}

TEST(RetryPolicyTest, TheTryTimeoutBoundsOnlyIdempotentReplayableAttemptsWithAnotherLeft) {
  EXPECT_TRUE(kPolicy.BoundsTry(kGet));
  EXPECT_EQ(kPolicy.AttemptTimeout(kGet), 500ms);
  EXPECT_FALSE(kPolicy.BoundsTry(kPost));
  EXPECT_FALSE(kPolicy.BoundsTry(kStreamedPut));
  EXPECT_FALSE(kPolicy.BoundsTry(Number(kGet, 2, 3)));  // the last attempt
  EXPECT_FALSE(kPolicy.BoundsTry(Number(kGet, 0, 0)));  // the last member
  EXPECT_EQ(kPolicy.AttemptTimeout(Number(kGet, 0, 0)), 30000ms);
  EXPECT_FALSE(kUnbounded.BoundsTry(kGet));
  EXPECT_FALSE(RetryPolicy(2, 30000, 30000).BoundsTry(kGet));  // not shorter than the request timeout
}

TEST(RetryPolicyTest, ABoundedTryThatTimesOutBeforeAnyResponseByteMovesOnAndEjects) {
  EXPECT_EQ(kPolicy.Decide(Failure::kSendTimeout, kGet),
            (RetryDecision{true, true, "request not taken within the try timeout", Outcome::kTimeout, 504, kTimedOut}));
  EXPECT_EQ(kPolicy.Decide(Failure::kNoResponse, kGet),
            (RetryDecision{true, true, "no response within the try timeout", Outcome::kTimeout, 504, kTimedOut}));
}

TEST(RetryPolicyTest, AnUnboundedTimeoutGives504WithoutRetryOrEjection) {
  for (const Attempt& a : {kGet, kPost, Number(kGet, 2, 2)}) {
    EXPECT_EQ(kUnbounded.Decide(Failure::kSendTimeout, a), kTimeoutFinal);
    EXPECT_EQ(kUnbounded.Decide(Failure::kNoResponse, a), kTimeoutLogged);
  }
  // Under a try timeout, a POST and the last attempt wait the whole request timeout the same way.
  EXPECT_EQ(kPolicy.Decide(Failure::kNoResponse, kPost), kTimeoutLogged);
  EXPECT_EQ(kPolicy.Decide(Failure::kSendTimeout, Number(kGet, 2, 2)), kTimeoutFinal);
}

TEST(RetryPolicyTest, ATimeoutAfterSomeResponseBytesIsNeverRetried) {
  EXPECT_EQ(kPolicy.Decide(Failure::kSlowResponse, kGet), kTimeoutLogged);
}

TEST(RetryPolicyTest, GatewayErrorsOfMovableAttemptsGoToAnotherMember) {
  for (int status : {502, 503, 504}) {
    EXPECT_TRUE(kUnbounded.RetriesStatus(status, kGet)) << status;
    EXPECT_FALSE(kUnbounded.RetriesStatus(status, kPost)) << "the member may have acted on it";
    EXPECT_FALSE(kUnbounded.RetriesStatus(status, kStreamedPut)) << "the body is gone";
    EXPECT_FALSE(kUnbounded.RetriesStatus(status, Number(kGet, 2, 2))) << "the last attempt's answer is relayed";
    EXPECT_FALSE(kUnbounded.RetriesStatus(status, Number(kGet, 0, 0))) << "no member left to ask";
  }
  for (int status : {200, 404, 500, 501, 505}) EXPECT_FALSE(kUnbounded.RetriesStatus(status, kGet)) << status;
}

TEST(RetryPolicyTest, AMemberTurningUnhealthyMovesIdempotentRequestsWithoutEjection) {
  const RetryDecision moved{true, false, "", Outcome::kTimeout, 504, kTimedOut};
  EXPECT_EQ(kUnbounded.Decide(Failure::kMemberUnhealthy, kGet), moved);
  EXPECT_FALSE(kUnbounded.Decide(Failure::kMemberUnhealthy, kPost).retry);
  EXPECT_FALSE(kUnbounded.Decide(Failure::kMemberUnhealthy, Number(kGet, 2, 2)).retry);
  EXPECT_TRUE(kUnbounded.Movable(kGet));
  EXPECT_FALSE(kUnbounded.Movable(kStreamedPut));
}

}  // namespace
}  // namespace webtier::balancer
