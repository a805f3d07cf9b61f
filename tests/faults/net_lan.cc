// NetLan: ip netns + a bridge + veth pairs through the command-line tools.
#include "net_lan.h"

#include <unistd.h>

#include <stdexcept>

#include "net_host.h"

namespace webtier::faults {

namespace {
const char* kIp = "/usr/sbin/ip";

void MustRun(const std::vector<std::string>& argv) {
  if (RunCommand(argv) != 0) throw std::runtime_error("LAN setup command failed: " + argv[1] + " " + argv[2]);
}
}  // namespace

NetLan::NetLan(int index)
    : tag_(std::to_string(::getpid() % 100000) + "l" + std::to_string(index)),
      prefix_("198.18." + std::to_string(index) + "."),
      switch_ns_("wtsw" + tag_),
      root_link_("wtr" + tag_) {
  MustRun({kIp, "netns", "add", switch_ns_});
  MustRun({kIp, "-n", switch_ns_, "link", "add", "br0", "type", "bridge"});
  MustRun({kIp, "-n", switch_ns_, "link", "set", "br0", "up"});
  // The root namespace's port: root_link_ here, "up0" on the switch.
  MustRun({kIp, "link", "add", root_link_, "type", "veth", "peer", "name", "up0", "netns", switch_ns_});
  MustRun({kIp, "-n", switch_ns_, "link", "set", "up0", "master", "br0", "up"});
  MustRun({kIp, "addr", "add", prefix_ + "1/24", "dev", root_link_});
  MustRun({kIp, "link", "set", root_link_, "up"});
}

NetLan::~NetLan() {
  RunCommand({kIp, "link", "del", root_link_});
  for (auto& h : hosts_) RunCommand({kIp, "netns", "del", h.ns});
  RunCommand({kIp, "netns", "del", switch_ns_});
}

int NetLan::AddHost() {
  const int n = static_cast<int>(hosts_.size());
  const std::string port = "p" + std::to_string(n);
  Host h{.ns = "wth" + tag_ + "h" + std::to_string(n), .ip = prefix_ + std::to_string(n + 2)};
  MustRun({kIp, "netns", "add", h.ns});
  hosts_.push_back(h);  // from here the destructor removes it
  // The host's port: "eth0" inside the host, p<n> on the switch.
  MustRun({kIp, "-n", switch_ns_, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", h.ns});
  MustRun({kIp, "-n", switch_ns_, "link", "set", port, "master", "br0", "up"});
  MustRun({kIp, "-n", h.ns, "addr", "add", h.ip + "/24", "dev", "eth0"});
  MustRun({kIp, "-n", h.ns, "link", "set", "eth0", "up"});
  MustRun({kIp, "-n", h.ns, "link", "set", "lo", "up"});
  return n;
}

std::vector<std::string> NetLan::Wrap(int host, const std::vector<std::string>& argv) const {
  std::vector<std::string> out = {kIp, "netns", "exec", hosts_.at(static_cast<size_t>(host)).ns};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

}  // namespace webtier::faults
