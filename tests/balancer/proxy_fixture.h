// The fixture of the in-process proxy tests: a ProxyServer on a free loopback
// port fed by a Pool directly (no ZooKeeper), with its own metrics registry.
// Members are added by id and loopback port. RawMember is a member driven by
// hand. For the test's own thread (the proxy runs its workers on threads of
// its own).
#pragma once

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <string>

#include "loopback_member.h"
#include "webtier/balancer/upstream/pool.h"
#include "webtier/balancer/telemetry/proxy_metrics.h"
#include "webtier/balancer/engine/proxy_server.h"
#include "webtier/monitoring/metrics.h"
#include "webtier/testing/harness.h"

namespace webtier::balancer {

class ProxyFixture : public ::testing::Test {
 protected:
  // Starts the proxy with config_ as set, on `threads` workers (1: every
  // client shares one pool of idle member connections).
  void StartProxy(int threads = 2) {
    config_.listen = {"127.0.0.1", 0};
    config_.threads = threads;
    proxy_ = std::make_unique<ProxyServer>(config_, pool_, metrics_);
    ASSERT_TRUE(proxy_->Start().ok());
  }
  // Adds the member `id` on 127.0.0.1:`port` to the pool.
  void Add(const std::string& id, uint16_t port) { pool_.OnMembershipUpdate({LoopbackMember(id, port)}, {}); }
  std::string Url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(proxy_->port()) + path; }
  // A sample of the proxy's metrics; 0 when absent.
  double Metric(const std::string& name, const std::map<std::string, std::string>& labels = {}) {
    return testing::MetricValue(registry_.Render(), name, labels).value_or(0);
  }

  Config config_;
  metrics::Registry registry_{"balancer", "test"};
  ProxyMetrics metrics_{registry_.prom()};
  Pool pool_{PolicyKind::kRoundRobin, &metrics_};
  std::unique_ptr<ProxyServer> proxy_;
};

// A member driven by hand, on a plain listening socket. Left alone it is a
// member that is there but never answers, like a SIGSTOPped process: the
// kernel completes the handshakes and buffers the requests; nobody reads them.
class RawMember {
 public:
  RawMember() { fd_ = testing::ListenLoopback(&port_); }
  ~RawMember() { ::close(fd_); }
  uint16_t port() const { return port_; }

  // The next connection from the balancer, or -1 after `timeout`.
  int Accept(std::chrono::milliseconds timeout) {
    timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    const int c = ::accept(fd_, nullptr, nullptr);
    if (c >= 0) ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return c;
  }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

}  // namespace webtier::balancer
