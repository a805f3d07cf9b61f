// The whole tier as real processes for failure scenarios: ZooKeeper (single
// or ensemble), Redis, webnodes (on loopback or in their own network
// namespace) and a balancer, plus the probes the scenarios assert on.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "net_host.h"
#include "webtier/testing/harness.h"

namespace webtier::faults {

using namespace std::chrono_literals;
using testing::Process;

struct PoolMember {
  std::string id, address, state;
  long requests = 0;
};

// A balancer process on free loopback ports (ports kept across Restart()).
class BalancerProcess {
 public:
  BalancerProcess(std::string zk_connect, std::vector<std::string> extra_args);
  void Start();            // waits for /health (throws after 20 s)
  void Stop(int signo);    // signal and wait for exit
  uint16_t port() const { return port_; }
  std::string admin_url(const std::string& path) const;
  // The members /status reports, or nullopt when /status does not answer.
  std::optional<std::vector<PoolMember>> Members() const;
  int HealthyCount() const;
  std::string Metrics() const;
  Process& process() { return *proc_; }
  const std::string& state_file() const { return state_file_; }

 private:
  testing::TempDir dir_;
  std::string zk_;
  std::vector<std::string> extra_;
  uint16_t port_, admin_port_;
  std::string state_file_;
  std::unique_ptr<Process> proc_;
};

// A webnode inside its own network namespace (see NetHost), listening on
// the namespace's address so the balancer reaches it over the veth.
class NamespacedWebnode {
 public:
  NamespacedWebnode(NetHost& host, std::string id, const std::string& zk_connect, std::vector<std::string> extra);
  std::string url(const std::string& path) const;
  uint16_t port() const { return port_; }
  Process& process() { return *proc_; }

 private:
  NetHost& host_;
  uint16_t port_;
  std::unique_ptr<Process> proc_;
};

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
