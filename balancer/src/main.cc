// The balancer program: flags -> Config, then ZooKeeper membership, the pool,
// the proxy and the admin endpoint, until SIGTERM/SIGINT. SIGHUP reloads the
// TLS certificate and key; SIGUSR1 reopens the access log.
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <thread>

#include "webtier/balancer/telemetry/access_log.h"
#include "webtier/balancer/admin/admin_server.h"
#include "webtier/balancer/config.h"
#include "webtier/balancer/health/health_checker.h"
#include "webtier/balancer/membership/member_registry.h"
#include "webtier/balancer/upstream/pool.h"
#include "webtier/balancer/telemetry/proxy_metrics.h"
#include "webtier/balancer/engine/proxy_server.h"
#include "webtier/balancer/tls/tls_context.h"
#include "webtier/common/flags.h"
#include "webtier/common/log.h"
#include "webtier/common/otlp.h"
#include "webtier/common/stop_signals.h"
#include "webtier/common/zk_session.h"
#include "webtier/monitoring/metrics.h"

using namespace webtier;
using namespace webtier::balancer;

namespace {

// Every client connection may need a member connection too: use all the
// descriptors the hard limit allows (as nginx's worker_rlimit_nofile would).
void RaiseDescriptorLimit() {
  if (rlimit rl{}; ::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

// Waits up to Config::zk_connect_wait_ms for the member list from ZooKeeper;
// without it, starts from the state file's pool (if any), not an empty one.
void FillPoolAtStart(const Config& config, MemberRegistry& members) {
  const auto wait_until = std::chrono::steady_clock::now() + std::chrono::milliseconds(config.zk_connect_wait_ms);
  while (!members.synced() && std::chrono::steady_clock::now() < wait_until)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (members.synced()) return;
  log::Warn("balancer", "ZooKeeper not reachable yet").kv("zk", config.zk.connect);
  if (config.state_file.empty()) return;
  if (Status s = members.LoadStateFile(); !s.ok())
    log::Warn("balancer", "no pool from the state file").kv("err", s.ToString());
}

// SIGHUP and SIGUSR1, blocked in every thread (construct before any thread
// starts) and taken by a thread of its own, which runs what they ask for.
class HangupSignal {
 public:
  HangupSignal() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGHUP);
    sigaddset(&set_, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
  }
  ~HangupSignal() { Stop(); }
  // Ends the thread (a reload under way finishes first).
  void Stop() {
    if (!thread_.joinable()) return;
    stop_ = true;
    pthread_kill(thread_.native_handle(), SIGHUP);
    thread_.join();
  }
  void OnSignal(std::function<void(int signo)> run) {
    thread_ = std::thread([this, run = std::move(run)] {
      for (;;) {
        int signo = 0;
        sigwait(&set_, &signo);
        if (stop_) return;
        run(signo);
      }
    });
  }

 private:
  sigset_t set_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// SIGHUP's work: new handshakes get the certificate and key as the files are
// now; a file that does not load is logged and counted, the old pair stays.
void ReloadTls(TlsContext* tls, ProxyMetrics& metrics) {
  if (tls == nullptr) {
    log::Info("tls", "SIGHUP ignored: no --tls-listen");
    return;
  }
  if (Status s = tls->Reload(); !s.ok()) {
    metrics.tls_reloads_failed->Increment();
    log::Error("tls", "certificate reload failed; keeping the current one").kv("err", s.message());
    return;
  }
  metrics.tls_reloads_ok->Increment();
  log::Info("tls", "certificate reloaded");
}

}  // namespace

int main(int argc, char** argv) {
  Config config;
  CLI::App app{"webtier balancer: HTTP load balancer over the ZooKeeper member list", "balancer"};
  AddFlags(app, &config);
  flags::BindEnvironment(app, "BALANCER");
  if (auto rc = flags::Parse(app, argc, argv)) return *rc;
  if (Status s = Finalize(&config); !s.ok()) return flags::BadValue(app, s);

  std::optional<TlsContext> tls;
  if (config.tls_listen) {
    tls.emplace(config.tls_cert, config.tls_key);
    if (Status s = tls->Load(); !s.ok()) return flags::BadValue(app, s);
  }

  RaiseDescriptorLimit();
  StopSignals stop_signals;  // before any thread starts
  HangupSignal hangup;

  metrics::Registry registry("balancer", WEBTIER_VERSION);
  ProxyMetrics metrics(registry.prom());
  PoolOptions pool_options = PoolOptions::From(config.health);
  pool_options.member_allow = config.member_allow;
  Pool pool(config.policy, &metrics, std::move(pool_options));
  HealthChecker checker(config.health, pool, &metrics);  // before `members`: hooks the pool's updates
  zk::Session session(membership::SessionOptions(config.zk, "zk"));
  MemberRegistry members(session, {.path = config.zk.path, .state_file = config.state_file}, pool, &metrics);
  // On every way out, stop the session's event thread before `members` goes.
  struct CloseSession {
    zk::Session& s;
    ~CloseSession() { s.Close(); }
  } close_session{session};
  if (Status s = session.Start(); !s.ok()) return flags::BadValue(app, flags::Invalid("--zk", s.message()));

  FillPoolAtStart(config, members);
  checker.Start();

  AdminServer admin(config, pool, members, metrics, registry);
  if (Status s = admin.Start(); !s.ok()) {
    log::Error("balancer", "cannot start admin endpoint").kv("err", s.ToString());
    return 1;
  }
  std::unique_ptr<AccessLog> access_log;
  if (!config.access_log.empty()) {
    AccessLog::Options options{.path = config.access_log,
                               .format = config.access_log_format == "text" ? AccessLogFormat::kText
                                                                            : AccessLogFormat::kJson,
                               .sample = config.access_log_sample};
    if (Status s = AccessLog::Open(std::move(options), &metrics, &access_log); !s.ok())
      return flags::BadValue(app, flags::Invalid("--access-log", s.message()));
  }
  std::unique_ptr<otlp::Exporter> spans;
  if (!config.otlp_endpoint.empty()) {
    otlp::Exporter::Options options{.endpoint = config.otlp_endpoint, .service = "webtier-balancer"};
    options.on_result = [&metrics](uint64_t exported, uint64_t dropped) {
      metrics.spans_exported.Increment(static_cast<double>(exported));
      metrics.spans_dropped.Increment(static_cast<double>(dropped));
    };
    if (Status s = otlp::Exporter::Create(std::move(options), &spans); !s.ok())
      return flags::BadValue(app, flags::Invalid("--otlp-endpoint", s.message()));
  }
  ProxyServer proxy(config, pool, metrics, tls ? &*tls : nullptr, access_log.get(), spans.get());
  if (Status s = proxy.Start(); !s.ok()) {
    log::Error("balancer", "cannot start proxy").kv("err", s.ToString());
    return 1;
  }
  hangup.OnSignal([&](int signo) {
    if (signo == SIGHUP) ReloadTls(tls ? &*tls : nullptr, metrics);
    else if (access_log) access_log->Reopen();
    else log::Info("balancer", "SIGUSR1 ignored: no --access-log");
  });
  log::Info("balancer", "started")
      .kv("version", WEBTIER_VERSION)
      .kv("policy", PolicyName(config.policy))
      .kv("zk", config.zk.connect)
      .kv("zk_path", config.zk.path)
      .kv("member_allow", config.member_allow.ToString());

  const int signo = stop_signals.Wait();
  log::Info("balancer", "stopping").kv("signal", signo == SIGTERM ? "SIGTERM" : "SIGINT");
  hangup.Stop();  // before what a reload touches goes away
  proxy.Shutdown(std::chrono::milliseconds(config.request_timeout_ms));
  access_log.reset();  // the workers are stopped: every line is in
  spans.reset();       // and every span (one last batch)
  admin.Stop();
  checker.Stop();
  session.Close();
  log::Info("balancer", "stopped");
  return 0;
}
