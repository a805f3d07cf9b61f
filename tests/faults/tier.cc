// Tier processes and the fault report.
#include "tier.h"

#include <nlohmann/json.hpp>

#include <iomanip>
#include <mutex>
#include <sstream>

namespace webtier::faults {

using namespace webtier::testing;

BalancerProcess::BalancerProcess(std::string zk_connect, std::vector<std::string> extra_args)
    : dir_("webtier-bal"), zk_(std::move(zk_connect)), extra_(std::move(extra_args)), port_(FreePort()),
      admin_port_(FreePort()), state_file_(dir_.path() + "/pool.json") {}

void BalancerProcess::Start() {
  std::vector<std::string> argv = {BinaryPath("balancer"), "--listen", "127.0.0.1:" + std::to_string(port_),
                                   "--admin-listen", "127.0.0.1:" + std::to_string(admin_port_), "--zk", zk_,
                                   "--state-file", state_file_, "--threads", "1"};
  argv.insert(argv.end(), extra_.begin(), extra_.end());
  proc_ = std::make_unique<Process>(
      Process::Options{.argv = argv, .env = {}, .log_path = dir_.path() + "/balancer.log", .cwd = {}});
  bool ok = WaitFor([&] { return !proc_->running() || HttpGet(admin_url("/health"), 1s).status == 200; }, 20s);
  if (!ok || !proc_->running()) throw std::runtime_error("balancer did not start: " + proc_->Log());
}

void BalancerProcess::Stop(int signo) {
  if (!proc_) return;
  proc_->Signal(signo);
  if (!proc_->Wait(15s)) proc_->Kill();
}

std::string BalancerProcess::admin_url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(admin_port_) + path;
}

std::optional<std::vector<PoolMember>> BalancerProcess::Members() const {
  auto r = HttpGet(admin_url("/status"), 2s);
  if (r.status != 200) return std::nullopt;
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (j.is_discarded() || !j.contains("members")) return std::nullopt;
  std::vector<PoolMember> out;
  for (const auto& m : j["members"]) {
    PoolMember pm;
    pm.id = m.value("id", "");
    pm.address = m.value("address", "");
    pm.state = m.value("state", "");
    pm.requests = m.value("requests", 0L);
    out.push_back(pm);
  }
  return out;
}

int BalancerProcess::HealthyCount() const {
  auto m = Members();
  if (!m) return -1;
  int n = 0;
  for (auto& x : *m) n += x.state == "healthy";
  return n;
}

std::string BalancerProcess::Metrics() const { return HttpGet(admin_url("/metrics"), 2s).body; }

NamespacedWebnode::NamespacedWebnode(NetHost& host, std::string id, const std::string& zk_connect,
                                     std::vector<std::string> extra)
    : host_(host), port_(FreePort()) {
  std::vector<std::string> argv = {BinaryPath("webnode"), "--listen", host_.inside_ip() + ":" + std::to_string(port_),
                                   "--zk", zk_connect, "--id", id, "--redis", "", "--threads", "1"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  proc_ = std::make_unique<Process>(Process::Options{.argv = host_.Wrap(argv), .env = {}, .log_path = {}, .cwd = {}});
}

std::string NamespacedWebnode::url(const std::string& path) const {
  return "http://" + host_.inside_ip() + ":" + std::to_string(port_) + path;
}

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
