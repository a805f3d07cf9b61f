// NetHost: ip netns + veth + iptables through the command-line tools.
#include "net_host.h"

#include <unistd.h>

#include <iostream>
#include <stdexcept>

#include "webtier/testing/harness.h"

namespace webtier::faults {

using namespace webtier::testing;

int RunCommand(const std::vector<std::string>& argv) {
  TempDir tmp("webtier-cmd");
  Process p(Process::Options{.argv = argv, .env = {}, .log_path = tmp.path() + "/out", .cwd = {}});
  auto rc = p.Wait(20s);
  int code = rc.value_or(-1);
  if (code != 0) {
    std::string cmd;
    for (auto& a : argv) cmd += a + " ";
    std::cerr << "command failed (" << code << "): " << cmd << "\n" << p.Log();
  }
  return code;
}

namespace {
void MustRun(const std::vector<std::string>& argv) {
  if (RunCommand(argv) != 0) throw std::runtime_error("network setup command failed: " + argv[0] + " " + argv[1]);
}
const char* kIp = "/usr/sbin/ip";
const char* kIptables = "/usr/sbin/iptables";
}  // namespace

bool NetHost::Supported() {
  if (::geteuid() != 0 || ::access(kIp, X_OK) != 0 || ::access(kIptables, X_OK) != 0) return false;
  std::string probe = "wtprobe" + std::to_string(::getpid());
  bool ok = RunCommand({kIp, "netns", "add", probe}) == 0;
  if (ok) RunCommand({kIp, "netns", "del", probe});
  return ok;
}

NetHost::NetHost(int index) {
  std::string tag = std::to_string(::getpid() % 100000) + "x" + std::to_string(index);
  name_ = "wt" + tag;
  veth_out_ = "wto" + tag;
  veth_in_ = "wti" + tag;
  outside_ = "198.18." + std::to_string(index) + ".1";
  inside_ = "198.18." + std::to_string(index) + ".2";
  MustRun({kIp, "netns", "add", name_});
  MustRun({kIp, "link", "add", veth_out_, "type", "veth", "peer", "name", veth_in_});
  MustRun({kIp, "link", "set", veth_in_, "netns", name_});
  MustRun({kIp, "addr", "add", outside_ + "/30", "dev", veth_out_});
  MustRun({kIp, "link", "set", veth_out_, "up"});
  MustRun({kIp, "netns", "exec", name_, kIp, "addr", "add", inside_ + "/30", "dev", veth_in_});
  MustRun({kIp, "netns", "exec", name_, kIp, "link", "set", veth_in_, "up"});
  MustRun({kIp, "netns", "exec", name_, kIp, "link", "set", "lo", "up"});
}

NetHost::~NetHost() {
  RunCommand({kIp, "link", "del", veth_out_});
  RunCommand({kIp, "netns", "del", name_});
}

std::vector<std::string> NetHost::Wrap(const std::vector<std::string>& argv) const {
  std::vector<std::string> out = {kIp, "netns", "exec", name_};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

void NetHost::DropTrafficWith(uint16_t port) {
  const std::string p = std::to_string(port);
  MustRun(Wrap({kIptables, "-A", "OUTPUT", "-p", "tcp", "-d", outside_, "--dport", p, "-j", "DROP"}));
  MustRun(Wrap({kIptables, "-A", "INPUT", "-p", "tcp", "-s", outside_, "--sport", p, "-j", "DROP"}));
}

void NetHost::RejectInbound(uint16_t port) {
  MustRun(Wrap({kIptables, "-A", "INPUT", "-p", "tcp", "--dport", std::to_string(port), "-j", "REJECT",
                "--reject-with", "tcp-reset"}));
}

void NetHost::Heal() { MustRun(Wrap({kIptables, "-F"})); }

}  // namespace webtier::faults
