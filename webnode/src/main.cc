// webnode: parse flags into the Config, build the parts, serve, drain on SIGTERM.
#include <atomic>
#include <chrono>
#include <iostream>
#include <memory>
#include <optional>
#include <thread>

#include "webtier/common/flags.h"
#include "webtier/common/log.h"
#include "webtier/common/otlp.h"
#include "webtier/common/stop_signals.h"
#include "webtier/common/zk_session.h"
#include "webtier/monitoring/metrics.h"
#include "webtier/webnode/cached_content.h"
#include "webtier/webnode/config.h"
#include "webtier/webnode/redis_master.h"
#include "webtier/webnode/registration.h"
#include "webtier/webnode/server.h"

int main(int argc, char** argv) {
  using namespace webtier;
  webnode::Config config;
  CLI::App app{"webnode: a Pistache web node that registers itself in ZooKeeper and caches in Redis", "webnode"};
  webnode::AddFlags(app, &config);
  flags::BindEnvironment(app, "WEBNODE");
  if (auto rc = flags::Parse(app, argc, argv)) return *rc;
  if (Status s = webnode::Finalize(&config); !s.ok()) return flags::BadValue(app, s);

  StopSignals stop_signals;  // before any thread starts

  metrics::Registry registry("webnode", WEBTIER_VERSION);
  std::shared_ptr<cache::RedisMaster> redis_master = webnode::MakeRedisMaster(config, registry.prom());
  std::unique_ptr<otlp::Exporter> spans = webnode::MakeSpanExporter(config, registry.prom());
  std::unique_ptr<webnode::ContentService> content =
      webnode::MakeCachedContent(config, registry.prom(), redis_master, {}, spans.get());
  zk::Session session(membership::SessionOptions(config.zk, "zk"));
  // Built once listening: the member carries the bound port (--listen host:0).
  std::optional<webnode::MemberRegistration> registration;
  std::atomic<bool> registration_built{false};  // publishes `registration` to the server's threads

  webnode::NodeServer server(config, registry, *content,
                             {.registered = [&] { return registration_built.load() && registration->registered(); },
                              .zk_connected = [&] { return session.connected(); },
                              .redis_master = [&] { return redis_master ? redis_master->Describe() : std::string(); }},
                             spans.get());
  if (Status s = server.Start(); !s.ok()) {
    log::Error("webnode", "cannot start").kv("err", s.ToString());
    return 1;
  }
  registration.emplace(session, config.zk.path, webnode::ThisMember(config, server.port(), server.admin_port()), registry.prom());
  registration_built = true;
  // Register only once listening.
  registration->Start();
  if (Status s = session.Start(); !s.ok()) {
    log::Error("webnode", "cannot start ZooKeeper client").kv("err", s.ToString());
    return 2;
  }

  const int signo = stop_signals.Wait();
  log::Info("webnode", "stopping: deregistering, then draining").kv("signal", signo).kv("drain_ms", config.drain_ms);
  server.SetDraining();
  // Deregister logs its result; a znode it could not delete ends with the
  // session when the process exits.
  registration->Deregister().IgnoreError();
  std::this_thread::sleep_for(std::chrono::milliseconds(config.drain_ms));
  log::Debug("webnode", "drain over: closing the listener");
  server.Shutdown();
  // No new requests reach the content service now; let it finish its
  // in-flight work while the server state its Replies point into is alive.
  content.reset();
  log::Debug("webnode", "closing the ZooKeeper session");
  session.Close();
  log::Info("webnode", "stopped");
  return 0;
}
