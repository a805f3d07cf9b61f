// The balancer program: flags -> Config, then ZooKeeper membership, the pool,
// the proxy and the admin endpoint, until SIGTERM/SIGINT or until a successor
// takes the listening sockets over (--control-socket; with --takeover this
// process is the successor). SIGHUP reloads the TLS certificate and key;
// SIGUSR1 reopens the access log.
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <thread>

#include "webtier/balancer/telemetry/access_log.h"
#include "webtier/balancer/admin/admin_server.h"
#include "webtier/balancer/config.h"
#include "webtier/balancer/control/handover.h"
#include "webtier/balancer/health/health_checker.h"
#include "webtier/balancer/membership/member_registry.h"
#include "webtier/balancer/upstream/pool.h"
#include "webtier/balancer/telemetry/proxy_metrics.h"
#include "webtier/balancer/engine/proxy_server.h"
#include "webtier/balancer/tls/tls_context.h"
#include "webtier/common/flags.h"
#include "webtier/common/log.h"
#include "webtier/common/otlp.h"
#include "webtier/cache/clock.h"
#include "webtier/balancer/edge/invalidations.h"
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
    log::Error("tls", "certificate reload failed; keeping the current one").kv("err", s.message());
    metrics.tls_reloads_failed->Increment();  // after the line: a counted failure has its log line out
    return;
  }
  metrics.tls_reloads_ok->Increment();
  log::Info("tls", "certificate reloaded");
}

// A successor is ready only once its members had their first health check
// (or the checks' own time for that passed): it must not send traffic to a
// member the old process knew to be down.
void WaitForFirstChecks(const Config& config, const Pool& pool) {
  if (!config.health.checks()) return;
  const auto give_up = std::chrono::steady_clock::now() +
                       2 * std::chrono::milliseconds(config.health.interval_ms + config.health.timeout_ms);
  const auto checked = [&] {
    for (const auto& m : pool.Snapshot()->members)
      if (m->last_check() == CheckResult::kNone) return false;
    return true;
  };
  while (!checked() && std::chrono::steady_clock::now() < give_up)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

// What this process hands to a successor: copies of its listening sockets
// (they stay open here until the successor confirms), the ticket keys and
// the members' ejections.
control::Handover Offer(const ProxyServer& proxy, const AdminServer& admin, const control::ControlServer& server,
                        const TlsContext* tls, const Pool& pool) {
  control::Handover h;
  h.pid = ::getpid();
  const auto add = [&h](std::string_view role, int fd) {
    if (fd >= 0) h.listeners.push_back({std::string(role), control::SocketAddress(fd), fd});
  };
  for (int fd : proxy.listener_fds(false)) add(control::kProxyRole, fd);
  for (int fd : proxy.listener_fds(true)) add(control::kTlsRole, fd);
  add(control::kAdminRole, admin.listener_fd());
  add(control::kControlRole, server.fd());
  if (tls != nullptr) h.ticket_keys = tls->ExportTicketKeys();
  const auto now = Clock::now();
  for (const auto& m : pool.Snapshot()->members) {
    const int64_t left =
        m->Ejected(now) ? std::chrono::duration_cast<std::chrono::milliseconds>(m->ejected_until() - now).count() : 0;
    if (left > 0 || m->ejection_count() > 0) h.members.push_back({m->key(), left, m->ejection_count()});
  }
  return h;
}

// The successor's side of Offer: the ejections go on where they were.
void TakeOverMembers(const std::vector<control::MemberState>& states, Pool& pool) {
  const auto now = Clock::now();
  const auto snapshot = pool.Snapshot();
  for (const control::MemberState& s : states) {
    for (const auto& m : snapshot->members) {
      if (m->key() == s.key) m->RestoreEjection(now, now + std::chrono::milliseconds(s.ejected_ms), s.ejections);
    }
  }
}

// The fds of `role` in `handover` (taken out of it).
std::vector<int> Fds(control::Handover& handover, std::string_view role) {
  std::vector<int> fds;
  for (const control::Listener& l : handover.Take(role)) fds.push_back(l.fd);
  return fds;
}
// The one socket of `role` (-1: none); extra ones are closed.
int OneFd(control::Handover& handover, std::string_view role) {
  std::vector<int> fds = Fds(handover, role);
  for (size_t i = 1; i < fds.size(); ++i) ::close(fds[i]);
  return fds.empty() ? -1 : fds.front();
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
    tls.emplace(config.tls_cert, config.tls_key, config.h2);
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

  // --takeover: everything above is ready; now the predecessor's sockets.
  std::unique_ptr<control::Successor> predecessor;
  control::Handover handover;
  if (config.takeover) {
    if (Status s = control::Successor::Connect(config.control_socket, &predecessor); s.code() == ErrorCode::kNotFound) {
      log::Info("handover", "no balancer to take over; binding").kv("control_socket", config.control_socket);
    } else if (!s.ok()) {
      log::Error("handover", "takeover failed").kv("err", s.message());
      return 1;
    } else {
      WaitForFirstChecks(config, pool);
      if (Status r = predecessor->Receive(&handover); !r.ok()) {
        log::Error("handover", "takeover failed; the running balancer keeps serving")
            .kv("predecessor", predecessor->peer_pid())
            .kv("err", r.message());
        return 1;
      }
      if (!handover.ticket_keys.empty() && tls) {
        if (Status t = tls->ImportTicketKeys(handover.ticket_keys); !t.ok())
          log::Warn("handover", "ticket keys not taken over; earlier sessions do a full handshake").kv("err", t.message());
      }
      TakeOverMembers(handover.members, pool);
    }
  }

  std::unique_ptr<edge::EdgeCache> edge_cache;
  std::unique_ptr<edge::Invalidations> invalidations;
  if (config.edge_cache()) {
    edge_cache = std::make_unique<edge::EdgeCache>(
        edge::EdgeOptions{config.edge_cache_bytes, config.edge_cache_max_object_bytes,
                          std::chrono::milliseconds(config.edge_cache_window_ms), config.edge_cache_min_uses},
        &cache::SystemClock::Get());
    if (!config.edge_redis.empty())
      invalidations = std::make_unique<edge::Invalidations>(config.edge_redis, config.edge_redis_user,
                                                            config.edge_redis_password, *edge_cache);
    log::Info("edge", "edge cache on")
        .kv("bytes", config.edge_cache_bytes)
        .kv("max_object_bytes", config.edge_cache_max_object_bytes)
        .kv("window_ms", config.edge_cache_window_ms)
        .kv("min_uses", config.edge_cache_min_uses)
        .kv("invalidations", config.edge_redis_flag.empty() ? "none (window only)" : config.edge_redis_flag);
  }
  AdminServer admin(config, pool, members, metrics, registry);
  // Before Start: the admin thread reads it from then on.
  if (edge_cache) admin.SetEdgeCache(edge_cache.get(), [edge = edge_cache.get()] { return edge->following(); });
  if (Status s = admin.Start(OneFd(handover, control::kAdminRole)); !s.ok()) {
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
  ProxyServer proxy(config, pool, metrics, tls ? &*tls : nullptr, access_log.get(), spans.get(), edge_cache.get());
  {
    std::vector<int> plain = Fds(handover, control::kProxyRole), secure = Fds(handover, control::kTlsRole);
    if (Status s = proxy.Start(std::move(plain), std::move(secure)); !s.ok()) {
      log::Error("balancer", "cannot start proxy").kv("err", s.ToString());
      return 1;
    }
  }
  // Once a successor took the sockets, main's wait ends (as with SIGTERM).
  const pthread_t main_thread = pthread_self();
  std::optional<control::ControlServer> control_server;
  if (!config.control_socket.empty()) {
    control::ControlServer::Hooks hooks;
    hooks.offer = [&] { return Offer(proxy, admin, *control_server, tls ? &*tls : nullptr, pool); };
    hooks.handed_over = [&](pid_t) {
      metrics.draining.Set(1);
      proxy.StopAccepting();
      admin.StopAccepting();
      pthread_kill(main_thread, SIGTERM);
    };
    hooks.progress = [&] { return control::DrainProgress{proxy.open_connections(), proxy.active_requests()}; };
    control_server.emplace(config.control_socket, std::move(hooks));
    int inherited = OneFd(handover, control::kControlRole);
    if (inherited >= 0 && control::SocketAddress(inherited) != config.control_socket) {
      ::close(inherited);  // --control-socket changed: a socket of our own
      inherited = -1;
    }
    if (Status s = control_server->Listen(inherited); !s.ok()) {
      log::Error("balancer", "cannot start the control socket").kv("err", s.message());
      return 1;
    }
  }
  handover.CloseSockets();  // any the flags had no use for
  // The predecessor stops accepting now; this process is the balancer.
  std::thread follow_drain;
  if (predecessor) {
    // systemd follows this process from here (a Type=notify unit; no-op elsewhere).
    control::NotifySystemd("MAINPID=" + std::to_string(::getpid()) + "\nREADY=1");
    if (Status s = predecessor->Confirm(); !s.ok())
      log::Warn("handover", "the predecessor did not confirm; it may still accept for a moment").kv("err", s.message());
    metrics.takeovers.Increment();
    log::Info("handover", "took over").kv("predecessor", predecessor->peer_pid()).kv("listeners", handover.listeners.size());
    follow_drain = std::thread([&, started = std::chrono::steady_clock::now()] {
      predecessor->FollowDrain([&](control::DrainProgress d, bool done) {
        metrics.predecessor_connections.Set(done ? 0 : d.connections);
        if (done) {
          const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
          log::Info("handover", "predecessor drained").kv("pid", predecessor->peer_pid()).kv("ms", ms.count());
        }
      });
    });
  }
  if (control_server) control_server->Start();
  if (!predecessor) control::NotifySystemd("READY=1");
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
  const bool handed_over = control_server && control_server->handed_over();
  if (handed_over) {
    log::Info("balancer", "stopping").kv("reason", "handed over");
  } else {
    log::Info("balancer", "stopping").kv("signal", signo == SIGTERM ? "SIGTERM" : "SIGINT");
    if (control_server) control_server->Stop();  // no takeover of a process on its way out
    control::NotifySystemd("STOPPING=1");
  }
  metrics.draining.Set(1);
  hangup.Stop();  // before what a reload touches goes away
  proxy.Shutdown(std::chrono::milliseconds(config.drain_ms));
  if (control_server) control_server->Stop();  // tells the successor the drain is over
  if (predecessor) predecessor->Close();
  if (follow_drain.joinable()) follow_drain.join();
  access_log.reset();  // the workers are stopped: every line is in
  spans.reset();       // and every span (one last batch)
  admin.Stop();
  checker.Stop();
  session.Close();
  log::Info("balancer", "stopped");
  return 0;
}
