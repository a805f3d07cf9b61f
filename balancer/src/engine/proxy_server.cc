// The proxy server: one Worker (thread, io_context, SO_REUSEPORT acceptor)
// per --threads, each accepting client connections into ClientSessions, with
// a watchdog that enforces their deadlines and a sweep of idle member
// connections; the drain on shutdown. Everything a Worker owns is touched
// only from its own thread.
#include "webtier/balancer/engine/proxy_server.h"

#include <list>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "engine/client_session.h"
#include "engine/io.h"
#include "engine/worker_context.h"
#include "webtier/balancer/clock.h"
#include "webtier/common/log.h"

namespace webtier::balancer {

namespace {

constexpr const char* kComponent = "proxy";
constexpr std::chrono::milliseconds kTick{50};  // the watchdog's resolution

Status ListenFailure(const tcp::endpoint& ep, error_code ec) {
  return Status(ErrorCode::kUnavailable, "cannot listen on " + ep.address().to_string() + ":" +
                                             std::to_string(ep.port()) + ": " + ec.message());
}

awaitable<void> Serve(WorkerContext& worker, tcp::socket socket, tcp::endpoint peer, std::shared_ptr<ssl::context> tls) {
  ClientSession session(worker, std::move(socket), peer, std::move(tls));
  co_await session.Run();
}

}  // namespace

class Worker {
 public:
  Worker(const Config& config, Pool& pool, ProxyMetrics& metrics, ServerCounters& counters, const TlsContext* tls,
         AccessLog* access_log, otlp::Exporter* spans)
      : context_(ctx_, config, pool, metrics, counters, clients_), tls_(tls) {
    context_.spans = spans;
    if (access_log != nullptr) {
      context_.access_log = access_log;
      context_.access_shard = access_log->NewShard();
    }
  }

  Status Bind(const tcp::endpoint& ep) {
    if (error_code ec = OpenListener(acceptor_, ep, {.reuse_port = true})) return ListenFailure(ep, ec);
    return Status::Ok();
  }
  Status BindTls(const tcp::endpoint& ep) {
    if (error_code ec = OpenListener(tls_acceptor_, ep, {.reuse_port = true})) return ListenFailure(ep, ec);
    return Status::Ok();
  }
  uint16_t bound_port() const { return acceptor_.local_endpoint().port(); }
  uint16_t bound_tls_port() const { return tls_acceptor_.local_endpoint().port(); }

  void Start() {
    asio::co_spawn(ctx_, Accept(acceptor_, nullptr), asio::detached);
    if (tls_acceptor_.is_open()) asio::co_spawn(ctx_, Accept(tls_acceptor_, tls_), asio::detached);
    asio::co_spawn(ctx_, SweepIdle(), asio::detached);
    asio::co_spawn(ctx_, Watchdog(), asio::detached);
    thread_ = std::thread([this] { ctx_.run(); });
  }

  // Stop accepting; close the client connections that wait for a request.
  void BeginDrain() {
    asio::post(ctx_, [this] {
      error_code ec;
      acceptor_.close(ec);
      tls_acceptor_.close(ec);
      for (ClientConnection* c : clients_) {
        if (c->idle) c->stream.cancel(ec);
      }
    });
  }

  void Stop() {
    ctx_.stop();
    if (thread_.joinable()) thread_.join();
  }

 private:
  // Accepts on `acceptor`; TLS connections (with their context at accept
  // time) when `tls` is set.
  awaitable<void> Accept(tcp::acceptor& acceptor, const TlsContext* tls);
  // Cancels the operations whose deadline passed, and the member operation
  // of a client that went away (see ClientConnection).
  awaitable<void> Watchdog();
  awaitable<void> SweepIdle();

  // Declared before ctx_: coroutine frames destroyed with ctx_ unregister from it.
  std::list<ClientConnection*> clients_;
  asio::io_context ctx_{1};
  tcp::acceptor acceptor_{ctx_};
  tcp::acceptor tls_acceptor_{ctx_};  // open only with --tls-listen
  // After ctx_: its idle member connections close before the io_context goes.
  WorkerContext context_;
  const TlsContext* const tls_;
  std::thread thread_;
};

awaitable<void> Worker::Accept(tcp::acceptor& acceptor, const TlsContext* tls) {
  Timer backoff(ctx_);
  uint64_t rejected = 0, failed = 0;
  const int max_connections = context_.config.max_connections;
  ServerCounters& counters = context_.counters;
  for (;;) {
    // The peer's address comes with the accept (no getpeername per connection).
    tcp::socket socket(ctx_);
    tcp::endpoint peer;
    auto [ec] = co_await acceptor.async_accept(socket, peer, kUse);
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      // EMFILE and friends: wait a little instead of spinning, log now and then.
      if (failed++ % 100 == 0) log::Warn(kComponent, "accept failed").kv("err", ec.message()).kv("count", failed);
      backoff.expires_after(std::chrono::milliseconds(50));
      co_await backoff.async_wait(kUse);
      continue;
    }
    if (counters.open_connections.load(std::memory_order_relaxed) >= max_connections) {
      context_.metrics.rejected_connections.Increment();
      if (rejected++ % 1000 == 0)
        log::Warn(kComponent, "connection refused: --max-connections reached").kv("max", max_connections);
      error_code ignored;
      socket.close(ignored);
      continue;
    }
    counters.open_connections.fetch_add(1, std::memory_order_relaxed);
    context_.metrics.client_connections.Increment();
    asio::co_spawn(ctx_, Serve(context_, std::move(socket), peer, tls != nullptr ? tls->Current() : nullptr),
                   asio::detached);
  }
}

awaitable<void> Worker::Watchdog() {
  Timer timer(ctx_);
  for (;;) {
    timer.expires_after(kTick);
    auto [ec] = co_await timer.async_wait(kUse);
    if (ec) co_return;
    const auto now = Clock::now();
    for (ClientConnection* c : clients_) {
      error_code ignored;
      if (now >= c->deadline) {
        c->timed_out = true;
        c->stream.cancel(ignored);
      }
      if (c->upstream == nullptr) continue;
      if (now >= c->upstream_deadline) {
        c->upstream_timed_out = true;
        c->upstream->cancel(ignored);
      } else if (c->AbandonUnhealthy()) {
        c->upstream->cancel(ignored);  // the exchange moves the request to another member
      } else if (!c->client_gone && PeerGone(c->stream.socket())) {
        // The client left while its request is with a member: abandon it
        // there too (the exchange closes the member's connection).
        c->client_gone = true;
        c->upstream->cancel(ignored);
      }
    }
  }
}

awaitable<void> Worker::SweepIdle() {
  Timer timer(ctx_);
  for (;;) {
    timer.expires_after(std::chrono::seconds(1));
    auto [ec] = co_await timer.async_wait(kUse);
    if (ec) co_return;
    context_.idle_connections.Sweep();
  }
}

ProxyServer::ProxyServer(const Config& config, Pool& pool, ProxyMetrics& metrics, const TlsContext* tls,
                         AccessLog* access_log, otlp::Exporter* spans)
    : config_(config),
      pool_(pool),
      metrics_(metrics),
      tls_(tls),
      access_log_(access_log),
      spans_(spans),
      counters_(std::make_unique<ServerCounters>()) {}

ProxyServer::~ProxyServer() {
  for (auto& w : workers_) w->Stop();
  workers_.clear();
}

int ProxyServer::open_connections() const { return counters_->open_connections.load(); }

Status ProxyServer::Bind(const net::HostPort& listen, std::string_view flag, bool tls, uint16_t* port_out,
                         std::string* address_out) {
  const std::optional<asio::ip::address> resolved = ListenAddress(listen);
  if (!resolved) return Status(ErrorCode::kInvalidArgument, "cannot resolve " + std::string(flag) + " host " + listen.host);
  const asio::ip::address addr = *resolved;
  uint16_t port = listen.port;
  if (port != 0) {
    // SO_REUSEPORT would let a second balancer on the same port silently take
    // half the connections: a plain bind first turns that into a clear error.
    asio::io_context probe_ctx;
    tcp::acceptor probe(probe_ctx);
    const tcp::endpoint ep(addr, port);
    if (error_code ec = OpenListener(probe, ep, {.listen = false})) return ListenFailure(ep, ec);
  }
  for (auto& w : workers_) {
    Status s = tls ? w->BindTls(tcp::endpoint(addr, port)) : w->Bind(tcp::endpoint(addr, port));
    if (!s.ok()) return s;
    port = tls ? w->bound_tls_port() : w->bound_port();  // port 0 picks one port for all threads
  }
  *port_out = port;
  *address_out = addr.to_string() + ":" + std::to_string(port);
  return Status::Ok();
}

Status ProxyServer::Start() {
  const int threads =
      config_.threads > 0 ? config_.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const TlsContext* tls = config_.tls_listen ? tls_ : nullptr;
  if (config_.tls_listen && (tls == nullptr || !tls->Current()))
    return Status(ErrorCode::kInvalidArgument, "--tls-listen needs a loaded TLS context");
  for (int i = 0; i < threads; ++i) workers_.push_back(std::make_unique<Worker>(config_, pool_, metrics_, *counters_, tls, access_log_, spans_));
  std::string address, tls_address;
  if (Status s = Bind(config_.listen, "--listen", false, &port_, &address); !s.ok()) return s;
  if (tls != nullptr) {
    if (Status s = Bind(*config_.tls_listen, "--tls-listen", true, &tls_port_, &tls_address); !s.ok()) return s;
  }
  for (auto& w : workers_) w->Start();
  log::Info(kComponent, "listening").kv("address", address).kv("threads", threads);
  if (tls != nullptr) log::Info("tls", "listening").kv("address", tls_address).kv("threads", threads);
  return Status::Ok();
}

void ProxyServer::Shutdown(std::chrono::milliseconds drain) {
  ServerCounters& c = *counters_;
  if (c.draining.exchange(true)) return;
  log::Info(kComponent, "draining").kv("open_connections", c.open_connections.load()).kv("in_flight", c.active_requests.load());
  for (auto& w : workers_) w->BeginDrain();
  const auto deadline = Clock::now() + drain;
  while (Clock::now() < deadline && (c.active_requests.load() > 0 || c.open_connections.load() > 0)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    // Connections that finished a request in the meantime are idle now: close them too.
    for (auto& w : workers_) w->BeginDrain();
  }
  if (c.active_requests.load() > 0)
    log::Warn(kComponent, "drain time over; abandoning requests").kv("in_flight", c.active_requests.load());
  for (auto& w : workers_) w->Stop();
}

}  // namespace webtier::balancer
