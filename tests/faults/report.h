// The fault report: one row per scenario (requests, failures, time to
// recover), rendered as a Markdown table. Thread-safe.
#pragma once

#include <cstdint>
#include <string>

namespace webtier::faults {

// One line of the report.
struct ScenarioResult {
  std::string scenario;
  uint64_t requests = 0;
  uint64_t failures = 0;
  std::string recovery;  // e.g. "1.23 s (znode gone)"
  std::string notes;
};

// Collects rows; printed and appended to $WEBTIER_FAULT_REPORT (default
// fault-report.md in the working directory) when the test program ends.
// ctest runs each scenario as its own process, so rows accumulate in the file;
// the table header is written only into an empty file.
void AddResult(ScenarioResult row);
std::string RenderReport(bool with_header);

}  // namespace webtier::faults
