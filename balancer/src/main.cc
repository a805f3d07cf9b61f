// The balancer program: flags -> Config, then ZooKeeper membership, the pool,
// the proxy and the admin endpoint, until SIGTERM/SIGINT.
#include <signal.h>
#include <sys/resource.h>

#include <chrono>
#include <iostream>
#include <thread>

#include <CLI/CLI.hpp>

#include "webtier/balancer/admin_server.h"
#include "webtier/balancer/config.h"
#include "webtier/balancer/member_registry.h"
#include "webtier/balancer/pool.h"
#include "webtier/balancer/proxy_metrics.h"
#include "webtier/balancer/proxy_server.h"
#include "webtier/common/flags.h"
#include "webtier/common/log.h"
#include "webtier/common/stop_signals.h"
#include "webtier/common/zk_session.h"
#include "webtier/monitoring/metrics.h"

using namespace webtier;
using namespace webtier::balancer;

namespace {

int BadFlag(const std::string& what) {
  std::cerr << "balancer: error: " << what << "\nRun 'balancer --help' for the list of flags.\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Config config;
  std::string listen = config.listen.ToString(), admin_listen = config.admin_listen.ToString();
  std::string policy(PolicyName(config.policy));
  CLI::App app{"webtier balancer: HTTP load balancer over the ZooKeeper member list", "balancer"};
  app.set_version_flag("--version", WEBTIER_VERSION);
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // a repeated flag: the last wins
  app.add_option("--listen", listen, "proxy address host:port")->capture_default_str();
  app.add_option("--admin-listen", admin_listen, "admin address (/metrics, /health, /status)")->capture_default_str();
  app.add_option("--zk", config.zk, "ZooKeeper connect string")->capture_default_str();
  app.add_option("--zk-path", config.zk_path, "membership path")->capture_default_str();
  app.add_option("--zk-session-timeout-ms", config.zk_session_timeout_ms)->capture_default_str()->check(CLI::Range(1000, 600000));
  app.add_option("--policy", policy, "round_robin|weighted_round_robin|least_request|consistent_hash")
      ->capture_default_str()
      ->check(CLI::IsMember({"round_robin", "weighted_round_robin", "least_request", "consistent_hash"}));
  app.add_option("--threads", config.threads, "proxy threads (0 = one per core)")->capture_default_str()->check(CLI::Range(0, 256));
  app.add_option("--retries", config.retries, "extra attempts on other members")->capture_default_str()->check(CLI::Range(0, 10));
  app.add_option("--connect-timeout-ms", config.connect_timeout_ms)->capture_default_str()->check(CLI::Range(1, 600000));
  app.add_option("--request-timeout-ms", config.request_timeout_ms)->capture_default_str()->check(CLI::Range(1, 3600000));
  app.add_option("--try-timeout-ms", config.try_timeout_ms,
                 "idempotent requests: a member that sends no response byte within this time is ejected and the "
                 "request retried on another (counts against --retries; 0 = off)")
      ->capture_default_str()
      ->check(CLI::Range(0, 3600000));
  app.add_option("--idle-timeout-ms", config.idle_timeout_ms)->capture_default_str()->check(CLI::Range(1, 3600000));
  app.add_option("--header-timeout-ms", config.header_timeout_ms)->capture_default_str()->check(CLI::Range(1, 600000));
  app.add_option("--max-header-bytes", config.max_header_bytes)->capture_default_str()->check(CLI::Range(256u, 1u << 24));
  app.add_option("--max-body-bytes", config.max_body_bytes)->capture_default_str();
  app.add_option("--max-connections", config.max_connections)->capture_default_str()->check(CLI::Range(1, 1000000));
  app.add_option("--state-file", config.state_file, "where the last known pool is saved")->capture_default_str();
  flags::BindEnvironment(app, "BALANCER");
  if (auto rc = flags::Parse(app, argc, argv)) return *rc;
  if (Status s = net::ParseListenAddress(listen, &config.listen); !s.ok()) return BadFlag("--listen: " + s.message());
  if (Status s = net::ParseListenAddress(admin_listen, &config.admin_listen); !s.ok())
    return BadFlag("--admin-listen: " + s.message());
  config.policy = *ParsePolicy(policy);
  if (config.zk_path.empty() || config.zk_path.front() != '/' || (config.zk_path.size() > 1 && config.zk_path.back() == '/'))
    return BadFlag("--zk-path: must be an absolute ZooKeeper path like /webtier/nodes");

  // Every client connection may need a member connection too: use all the
  // descriptors the hard limit allows (as nginx's worker_rlimit_nofile would).
  if (rlimit rl{}; ::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }

  StopSignals stop_signals;  // before any thread starts

  metrics::Registry registry("balancer", WEBTIER_VERSION);
  ProxyMetrics metrics(registry.prom());
  Pool pool(config.policy, &metrics);
  zk::Session session({.connect = config.zk, .session_timeout_ms = config.zk_session_timeout_ms, .component = "zk"});
  MemberRegistry members(session, {.path = config.zk_path, .state_file = config.state_file}, pool, &metrics);
  // On every way out, stop the session's event thread before `members` goes.
  struct CloseSession {
    zk::Session& s;
    ~CloseSession() { s.Close(); }
  } close_session{session};
  if (Status s = session.Start(); !s.ok()) return BadFlag("--zk: " + s.message());

  const auto wait_until = std::chrono::steady_clock::now() + std::chrono::milliseconds(config.zk_connect_wait_ms);
  while (!members.synced() && std::chrono::steady_clock::now() < wait_until)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (!members.synced()) {
    log::Warn("balancer", "ZooKeeper not reachable yet").kv("zk", config.zk);
    if (!config.state_file.empty()) {
      Status s = members.LoadStateFile();
      if (!s.ok()) log::Warn("balancer", "no pool from the state file").kv("err", s.ToString());
    }
  }

  AdminServer admin(config, pool, members, metrics, registry);
  if (Status s = admin.Start(); !s.ok()) {
    log::Error("balancer", "cannot start admin endpoint").kv("err", s.ToString());
    return 1;
  }
  ProxyServer proxy(config, pool, metrics);
  if (Status s = proxy.Start(); !s.ok()) {
    log::Error("balancer", "cannot start proxy").kv("err", s.ToString());
    return 1;
  }
  log::Info("balancer", "started")
      .kv("version", WEBTIER_VERSION)
      .kv("policy", PolicyName(config.policy))
      .kv("zk", config.zk)
      .kv("zk_path", config.zk_path);

  const int signo = stop_signals.Wait();
  log::Info("balancer", "stopping").kv("signal", signo == SIGTERM ? "SIGTERM" : "SIGINT");
  proxy.Shutdown(std::chrono::milliseconds(config.request_timeout_ms));
  admin.Stop();
  session.Close();
  log::Info("balancer", "stopped");
  return 0;
}
