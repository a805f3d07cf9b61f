// StatusHistory: per-second samples behind the status page.
#include "admin/status_history.h"

#include <algorithm>

namespace webtier::balancer {

namespace {

nlohmann::json CodeClasses(const std::array<uint64_t, 5>& codes, double per) {
  nlohmann::json out = nlohmann::json::object();
  for (size_t i = 0; i < codes.size(); ++i) {
    const std::string name = std::to_string(i + 1) + "xx";
    if (per > 0) out[name] = static_cast<double>(codes[i]) / per;
    else out[name] = codes[i];
  }
  return out;
}

nlohmann::json Milliseconds(double ms) { return ms < 0 ? nlohmann::json(nullptr) : nlohmann::json(ms); }

}  // namespace

void StatusHistory::Series::Add(const AnswerCounts& counts) {
  if (!window.empty()) {
    const AnswerCounts d = counts.Minus(window.back());
    spark_answers.push_back(static_cast<uint32_t>(std::min<uint64_t>(d.answers, UINT32_MAX)));
    spark_errors.push_back(static_cast<uint32_t>(std::min<uint64_t>(d.codes[4], UINT32_MAX)));
    if (spark_answers.size() > kSparkSeconds) {
      spark_answers.pop_front();
      spark_errors.pop_front();
    }
  }
  window.push_back(counts);
  if (window.size() > kWindowSeconds + 1) window.pop_front();
}

nlohmann::json StatusHistory::Series::Figures() const {
  using nlohmann::json;
  if (window.empty()) return json::object();
  const AnswerCounts& now = window.back();
  const size_t rate_span = std::min(window.size() - 1, kRateSeconds);
  const AnswerCounts recent = now.Minus(window[window.size() - 1 - rate_span]);
  const AnswerCounts minute = now.Minus(window.front());
  const double span = static_cast<double>(std::max<size_t>(rate_span, 1));
  uint32_t peak = 0;
  for (uint32_t n : spark_answers) peak = std::max(peak, n);
  return json{{"answers", now.answers},
              {"rate", rate_span == 0 ? 0.0 : static_cast<double>(recent.answers) / span},
              {"peak_rate", peak},
              {"codes", CodeClasses(now.codes, 0)},
              {"code_rates", CodeClasses(recent.codes, span)},
              {"p50_ms", Milliseconds(minute.PercentileMs(0.50))},
              {"p99_ms", Milliseconds(minute.PercentileMs(0.99))},
              {"bytes_in", now.bytes_in},
              {"bytes_out", now.bytes_out},
              {"cache", {{"hit", now.cache[0]}, {"miss", now.cache[1]}, {"other", now.cache[2]}}},
              {"spark", {{"answers", spark_answers}, {"errors", spark_errors}}}};
}

void StatusHistory::Sample(const std::vector<std::shared_ptr<Member>>& members, const AnswerCounts& totals,
                           Clock::time_point now) {
  MutexLock lock(&mu_);
  ++tick_;
  totals_.Add(totals);
  for (const auto& h : members) {
    Series& s = members_[h->key()];
    s.Add(h->answers.Read());
    // Down: failing its checks or ejected (not while its first checks are pending).
    if (h->health() == Health::kUnhealthy || h->Ejected(now)) ++s.down_seconds;
    s.last_tick = tick_;
  }
  const uint64_t tick = tick_;
  std::erase_if(members_, [tick](const auto& entry) { return tick - entry.second.last_tick > kSparkSeconds; });
}

nlohmann::json StatusHistory::MemberFigures(const std::string& key) const {
  MutexLock lock(&mu_);
  auto it = members_.find(key);
  if (it == members_.end()) return nlohmann::json{{"downtime_s", 0}};
  nlohmann::json f = it->second.Figures();
  f["downtime_s"] = it->second.down_seconds;
  return f;
}

nlohmann::json StatusHistory::TotalFigures() const {
  MutexLock lock(&mu_);
  return totals_.Figures();
}

}  // namespace webtier::balancer
