// A switched LAN of network namespaces, for tests that run the tier as
// separate machines: a bridge in a namespace of its own (the switch), one
// namespace per host plugged into it, and the test's own (root) namespace
// plugged in too so the test can reach every host. Addresses come from
// 198.18.<index>.0/24 (the benchmarking range, never a real network): the
// root namespace is .1, hosts .2, .3, ... Each host has its own IP stack, so
// every host can use the standard ports (2181, 6379, 8000...) as a real
// machine would. Nothing is routed: only this LAN's addresses are reachable.
// Needs root (NetHost::Supported()). Not thread-safe: build it from one thread.
#pragma once

#include <string>
#include <vector>

namespace webtier::faults {

class NetLan {
 public:
  // `index` (1..250) picks the /24; each test uses its own.
  explicit NetLan(int index);
  ~NetLan();  // removes every namespace and link it made
  NetLan(const NetLan&) = delete;
  NetLan& operator=(const NetLan&) = delete;

  // Plugs in a new host; returns its number for Ip/Wrap (0, 1, ...).
  int AddHost();
  const std::string& Ip(int host) const { return hosts_.at(static_cast<size_t>(host)).ip; }
  // argv that runs `argv` on host `host`.
  std::vector<std::string> Wrap(int host, const std::vector<std::string>& argv) const;

 private:
  struct Host {
    std::string ns, ip;
  };
  std::string tag_, prefix_, switch_ns_, root_link_;
  std::vector<Host> hosts_;
};

}  // namespace webtier::faults
