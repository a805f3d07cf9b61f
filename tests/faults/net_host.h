// A separate network host for failure tests: a network namespace joined to
// the root namespace by a veth pair, addressed from 198.18.0.0/15 (the range
// set aside for benchmarking, never a real network). Links are cut with
// iptables inside the namespace, so one path can fail while others work.
// Needs root (CAP_NET_ADMIN); Supported() says whether this machine allows it.
#pragma once

#include <string>
#include <vector>

namespace webtier::faults {

class NetHost {
 public:
  // `index` (1..250) picks the /30: outside 198.18.<index>.1, inside .2.
  explicit NetHost(int index);
  ~NetHost();  // removes the namespace and the veth pair
  NetHost(const NetHost&) = delete;
  NetHost& operator=(const NetHost&) = delete;

  static bool Supported();

  const std::string& inside_ip() const { return inside_; }
  const std::string& outside_ip() const { return outside_; }
  // argv that runs `argv` inside the namespace.
  std::vector<std::string> Wrap(const std::vector<std::string>& argv) const;

  // Silently drops traffic between this host and outside_ip():port in both
  // directions (a partition: the peer sees nothing, not even a reset).
  void DropTrafficWith(uint16_t port);
  // Answers every TCP packet to local `port` with a reset (new and
  // established connections alike), as a firewall rejecting the peer would.
  void RejectInbound(uint16_t port);
  // Removes every rule: the links work again.
  void Heal();

 private:
  std::string name_, veth_out_, veth_in_, inside_, outside_;
};

// Runs a command, returns its exit code (output discarded unless it fails).
int RunCommand(const std::vector<std::string>& argv);

}  // namespace webtier::faults
