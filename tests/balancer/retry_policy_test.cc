// The retry rules as a table: which failures are tried again on another
// member, for which methods and bodies, on which attempts; what each one
// reports, counts and ejects.
#include "webtier/balancer/retry_policy.h"

#include <gtest/gtest.h>

namespace webtier::balancer {
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

TEST(RetryPolicyTest, AttemptsAreTheFirstTryPlusRetries) {
  EXPECT_EQ(kPolicy.max_attempts(), 3);
  EXPECT_EQ(RetryPolicy(0, 0, 1000).max_attempts(), 1);
  EXPECT_EQ(RetryPolicy(-4, 0, 1000).max_attempts(), 1);
}

TEST(RetryPolicyTest, AFailedConnectIsRetriedForAnyMethodAndEjectsTheMember) {
  for (const Attempt& a : {kGet, kPost, kStreamedPut}) {
    const RetryDecision d = kPolicy.Decide(Failure::kConnect, a);
    EXPECT_TRUE(d.retry);
    EXPECT_TRUE(d.eject);
    EXPECT_EQ(d.eject_reason, "");  // the connect error's own message
    EXPECT_EQ(d.outcome, Outcome::kConnectFailure);
    EXPECT_EQ(d.status, 502);
    EXPECT_EQ(d.error, "member refused the connection");
    EXPECT_EQ(d.log, FailureLog::kNone);
  }
}

TEST(RetryPolicyTest, NothingIsRetriedOnTheLastAttempt) {
  for (Failure f : {Failure::kConnect, Failure::kSendReset, Failure::kResetBeforeResponse}) {
    EXPECT_TRUE(kPolicy.Decide(f, Number(kGet, 1, 1)).retry);
    EXPECT_FALSE(kPolicy.Decide(f, Number(kGet, 2, 5)).retry);
  }
  EXPECT_FALSE(RetryPolicy(0, 0, 1000).Decide(Failure::kConnect, kGet).retry);
}

TEST(RetryPolicyTest, AResetWhileSendingIsRetriedOnlyForIdempotentMethods) {
  EXPECT_TRUE(kPolicy.Decide(Failure::kSendReset, kGet).retry);
  // The part of a streamed body sent so far is still whole in memory.
  EXPECT_TRUE(kPolicy.Decide(Failure::kSendReset, kStreamedPut).retry);
  const RetryDecision post = kPolicy.Decide(Failure::kSendReset, kPost);
  EXPECT_FALSE(post.retry);
  EXPECT_FALSE(post.eject);
  EXPECT_EQ(post.outcome, Outcome::kReset);
  EXPECT_EQ(post.status, 502);
  EXPECT_EQ(post.error, "member closed the connection");
  EXPECT_EQ(post.log, FailureLog::kNone);
}

TEST(RetryPolicyTest, AResetBeforeAnyResponseByteIsRetriedOnlyWhenTheRequestCanBeSentAgain) {
  const RetryDecision get = kPolicy.Decide(Failure::kResetBeforeResponse, kGet);
  EXPECT_TRUE(get.retry);
  EXPECT_FALSE(get.eject);
  EXPECT_EQ(get.outcome, Outcome::kReset);
  EXPECT_EQ(get.log, FailureLog::kNone);
  for (const Attempt& a : {kPost, kStreamedPut}) {
    const RetryDecision d = kPolicy.Decide(Failure::kResetBeforeResponse, a);
    EXPECT_FALSE(d.retry);
    EXPECT_EQ(d.status, 502);
    EXPECT_EQ(d.log, FailureLog::kFailedMidResponse);
  }
  // Out of attempts: not retried, but not worth the mid-response warning.
  EXPECT_EQ(kPolicy.Decide(Failure::kResetBeforeResponse, Number(kGet, 2, 0)).log, FailureLog::kNone);
}

TEST(RetryPolicyTest, AResponseCutShortIsNeverRetried) {
  for (const Attempt& a : {kGet, kPost, kStreamedPut}) {
    const RetryDecision d = kPolicy.Decide(Failure::kResetMidResponse, a);
    EXPECT_FALSE(d.retry);
    EXPECT_FALSE(d.eject);
    EXPECT_EQ(d.status, 502);
    EXPECT_EQ(d.error, "member closed the connection");
    EXPECT_EQ(d.log, FailureLog::kFailedMidResponse);
  }
}

TEST(RetryPolicyTest, AStreamedBodyThatFailsIsNeverRetried) {
  const RetryDecision reset = kPolicy.Decide(Failure::kBodyReset, kStreamedPut);
  EXPECT_FALSE(reset.retry);
  EXPECT_EQ(reset.outcome, Outcome::kReset);
  EXPECT_EQ(reset.status, 502);
  const RetryDecision timeout = kPolicy.Decide(Failure::kBodyTimeout, kStreamedPut);
  EXPECT_FALSE(timeout.retry);
  EXPECT_FALSE(timeout.eject);
  EXPECT_EQ(timeout.outcome, Outcome::kTimeout);
  EXPECT_EQ(timeout.status, 504);
  EXPECT_EQ(timeout.error, "upstream timeout");
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
  for (Failure f : {Failure::kSendTimeout, Failure::kNoResponse}) {
    const RetryDecision d = kPolicy.Decide(f, kGet);
    EXPECT_TRUE(d.retry);
    EXPECT_TRUE(d.eject);
    EXPECT_NE(d.eject_reason, "");
    EXPECT_EQ(d.outcome, Outcome::kTimeout);
    EXPECT_EQ(d.status, 504);
    EXPECT_EQ(d.error, "upstream timeout");
    EXPECT_EQ(d.log, FailureLog::kNone);
  }
  EXPECT_EQ(kPolicy.Decide(Failure::kSendTimeout, kGet).eject_reason, "request not taken within the try timeout");
  EXPECT_EQ(kPolicy.Decide(Failure::kNoResponse, kGet).eject_reason, "no response within the try timeout");
}

TEST(RetryPolicyTest, AnUnboundedTimeoutGives504WithoutRetryOrEjection) {
  for (const Attempt& a : {kGet, kPost, Number(kGet, 2, 2)}) {
    const RetryDecision send = kUnbounded.Decide(Failure::kSendTimeout, a);
    EXPECT_FALSE(send.retry);
    EXPECT_FALSE(send.eject);
    EXPECT_EQ(send.status, 504);
    EXPECT_EQ(send.log, FailureLog::kNone);
    const RetryDecision response = kUnbounded.Decide(Failure::kNoResponse, a);
    EXPECT_FALSE(response.retry);
    EXPECT_FALSE(response.eject);
    EXPECT_EQ(response.outcome, Outcome::kTimeout);
    EXPECT_EQ(response.status, 504);
    EXPECT_EQ(response.log, FailureLog::kUpstreamTimeout);
  }
  // A POST under a try timeout waits the whole request timeout the same way.
  EXPECT_FALSE(kPolicy.Decide(Failure::kNoResponse, kPost).retry);
}

TEST(RetryPolicyTest, ATimeoutAfterSomeResponseBytesIsNeverRetried) {
  const RetryDecision d = kPolicy.Decide(Failure::kSlowResponse, kGet);
  EXPECT_FALSE(d.retry);
  EXPECT_FALSE(d.eject);
  EXPECT_EQ(d.status, 504);
  EXPECT_EQ(d.log, FailureLog::kUpstreamTimeout);
}

}  // namespace
}  // namespace webtier::balancer
