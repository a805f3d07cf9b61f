// The fault report.
#include "report.h"

#include <mutex>
#include <sstream>
#include <vector>

namespace webtier::faults {

namespace {
std::mutex g_report_mu;
std::vector<ScenarioResult>& Rows() {
  static std::vector<ScenarioResult> rows;
  return rows;
}
}  // namespace

void AddResult(ScenarioResult row) {
  std::lock_guard<std::mutex> l(g_report_mu);
  Rows().push_back(std::move(row));
}

std::string RenderReport(bool with_header) {
  std::lock_guard<std::mutex> l(g_report_mu);
  std::ostringstream o;
  if (with_header) o << "| scenario | requests | failures | time to recover | notes |\n|---|---:|---:|---|---|\n";
  for (const auto& r : Rows()) {
    o << "| " << r.scenario << " | " << r.requests << " | " << r.failures << " | " << r.recovery << " | " << r.notes
      << " |\n";
  }
  return o.str();
}

}  // namespace webtier::faults
