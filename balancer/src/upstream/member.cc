// Member counters and the passive-ejection back-off.
#include "webtier/balancer/upstream/member.h"

#include <algorithm>

#include "webtier/common/net.h"

namespace webtier::balancer {
namespace {

constexpr std::chrono::milliseconds kFirstEjection{1000};
constexpr std::chrono::milliseconds kMaxEjection{30000};

int64_t Ns(Clock::time_point t) { return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count(); }

}  // namespace

const char* OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kOk: return "ok";
    case Outcome::kConnectFailure: return "connect_failure";
    case Outcome::kReset: return "reset";
    case Outcome::kTimeout: return "timeout";
    case Outcome::kCount: break;
  }
  return "unknown";
}

Member::Member(MemberRecord record, boost::asio::ip::tcp::endpoint endpoint,
           std::array<prometheus::Counter*, static_cast<size_t>(Outcome::kCount)> outcomes, Health health)
    : record_(std::move(record)),
      endpoint_(std::move(endpoint)),
      address_(net::HostPort{endpoint_.address().to_string(), endpoint_.port()}.ToString()),
      outcomes_(outcomes),
      health_(health),
      healthy_since_ns_(Ns(Clock::now())) {}

bool Member::Ejected(Clock::time_point now) const {
  return ejected_until_ns_.load(std::memory_order_relaxed) > Ns(now);
}

bool Member::Eject(Clock::time_point now) {
  const int n = consecutive_ejections_.load(std::memory_order_relaxed);
  auto backoff = kFirstEjection * (1LL << std::min(n, 5));
  return Eject(now, std::min<std::chrono::milliseconds>(backoff, kMaxEjection));
}

bool Member::Eject(Clock::time_point now, std::chrono::milliseconds duration) {
  if (Ejected(now)) return false;
  consecutive_ejections_.fetch_add(1, std::memory_order_relaxed);
  int64_t until = Ns(now + duration);
  int64_t prev = ejected_until_ns_.load(std::memory_order_relaxed);
  // Two threads may eject at once: only the one that moves the deadline counts.
  while (prev <= Ns(now)) {
    if (ejected_until_ns_.compare_exchange_weak(prev, until, std::memory_order_relaxed)) {
      ejections_.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
  }
  consecutive_ejections_.fetch_sub(1, std::memory_order_relaxed);
  return false;
}

void Member::RestoreEjection(Clock::time_point now, Clock::time_point until, int consecutive) {
  consecutive_ejections_.store(std::max(consecutive, 0), std::memory_order_relaxed);
  if (until > now) {
    ejected_until_ns_.store(Ns(until), std::memory_order_relaxed);
    history.NoteEjection("handover", "ejected by the previous balancer process",
                         std::chrono::duration_cast<std::chrono::milliseconds>(until - now));
  }
}

void Member::RecordSuccess() {
  if (consecutive_ejections_.load(std::memory_order_relaxed) != 0) consecutive_ejections_.store(0, std::memory_order_relaxed);
  if (consecutive_5xx_.load(std::memory_order_relaxed) != 0) consecutive_5xx_.store(0, std::memory_order_relaxed);
}

bool Member::RecordOutlierFailure(int threshold) {
  if (threshold <= 0) return false;
  if (consecutive_5xx_.fetch_add(1, std::memory_order_relaxed) + 1 < threshold) return false;
  consecutive_5xx_.store(0, std::memory_order_relaxed);
  return true;
}

void Member::SetHealth(Health health, Clock::time_point now) {
  const Health before = health_.load(std::memory_order_relaxed);
  if (before == health) return;
  if (health == Health::kHealthy) healthy_since_ns_.store(Ns(now), std::memory_order_relaxed);
  health_.store(health, std::memory_order_release);
}

double Member::Ramp(Clock::time_point now, std::chrono::milliseconds window) const {
  if (window.count() <= 0) return 1.0;
  return SlowStartFactor(std::chrono::nanoseconds(Ns(now) - healthy_since_ns_.load(std::memory_order_relaxed)), window);
}

Clock::time_point Member::ejected_until() const {
  return Clock::time_point(std::chrono::nanoseconds(ejected_until_ns_.load(std::memory_order_relaxed)));
}

void Member::Count(Outcome outcome) {
  if (auto* c = outcomes_[static_cast<size_t>(outcome)]) c->Increment();
}

}  // namespace webtier::balancer
