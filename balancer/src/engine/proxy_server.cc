// The proxy server: one Worker (thread, io_context, SO_REUSEPORT acceptor)
// per --threads, each accepting client connections into ClientSessions, with
// a watchdog that enforces their deadlines and a sweep of idle member
// connections; the drain on shutdown. Everything a Worker owns is touched
// only from its own thread.
#include "webtier/balancer/engine/proxy_server.h"

#include <unistd.h>

#include <algorithm>
#include <list>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "engine/client_session.h"
#include "engine/h2_session.h"
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
  Worker(const Config& config, Pool& pool, ProxyMetrics& metrics, ServerCounters& counters, AccessLog* access_log,
         otlp::Exporter* spans, edge::EdgeCache* edge)
      : context_(ctx_, config, pool, metrics, counters, clients_) {
    context_.spans = spans;
    context_.edge = edge;
    if (access_log != nullptr) {
      context_.access_log = access_log;
      context_.access_shard = access_log->NewShard();
    }
  }

  // Listens on `ep` (one more socket of its SO_REUSEPORT group); TLS
  // connections (with the context at accept time) when `tls` is set.
  Status Bind(const tcp::endpoint& ep, const TlsContext* tls) {
    Listener& l = listeners_.emplace_back(ctx_, tls);
    if (error_code ec = OpenListener(l.acceptor, ep, {.reuse_port = true})) {
      listeners_.pop_back();
      return ListenFailure(ep, ec);
    }
    return Status::Ok();
  }
  // Accepts on a listening socket handed over by the previous process.
  Status Adopt(int fd, const TlsContext* tls) {
    Listener& l = listeners_.emplace_back(ctx_, tls);
    if (error_code ec = AdoptListener(l.acceptor, fd)) {
      listeners_.pop_back();
      return Status(ErrorCode::kUnavailable, "cannot accept on a handed-over socket: " + ec.message());
    }
    return Status::Ok();
  }
  // The sockets Bind/Adopt made, of one kind (plain or TLS).
  std::vector<int> ListenerFds(bool tls) const {
    std::vector<int> fds;
    for (const Listener& l : listeners_)
      if ((l.tls != nullptr) == tls) fds.push_back(const_cast<tcp::acceptor&>(l.acceptor).native_handle());
    return fds;
  }
  uint16_t LastPort() const { return listeners_.back().acceptor.local_endpoint().port(); }

  void Start() {
    for (Listener& l : listeners_) asio::co_spawn(ctx_, Accept(l.acceptor, l.tls), asio::detached);
    asio::co_spawn(ctx_, SweepIdle(), asio::detached);
    asio::co_spawn(ctx_, Watchdog(), asio::detached);
    thread_ = std::thread([this] { ctx_.run(); });
  }

  // Stops accepting: closes this process's listening sockets (handed over,
  // they live on in the successor, queued connections and all).
  void StopAccepting() {
    asio::post(ctx_, [this] {
      error_code ec;
      for (Listener& l : listeners_) l.acceptor.close(ec);
    });
  }

  // Stops accepting; the client connections that wait for a request close
  // once they have waited kDrainIdleGrace (a request that comes sooner is
  // answered, with Connection: close).
  void BeginDrain() {
    asio::post(ctx_, [this] {
      error_code ec;
      for (Listener& l : listeners_) l.acceptor.close(ec);
      for (ClientConnection* c : clients_) {
        if (c->h2_session != nullptr) c->h2_session->Drain();
        else if (c->idle) c->deadline = std::min(c->deadline, c->idle_since + kDrainIdleGrace);
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

  struct Listener {
    Listener(asio::io_context& ctx, const TlsContext* tls) : acceptor(ctx), tls(tls) {}
    tcp::acceptor acceptor;
    const TlsContext* tls;  // null: plain
  };

  // Declared before ctx_: coroutine frames destroyed with ctx_ unregister from it.
  std::list<ClientConnection*> clients_;
  // One thread runs it and only posts come from others (StopAccepting,
  // BeginDrain): its sockets and timers need no lock of their own.
  asio::io_context ctx_{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  std::list<Listener> listeners_;  // --listen and --tls-listen sockets (a list: stable addresses)
  // After ctx_: its idle member connections close before the io_context goes.
  WorkerContext context_;
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
        // An HTTP/2 stream shares the socket: its coroutine is woken instead.
        if (c->h2 != nullptr) c->h2->Notify();
        else c->stream.cancel(ignored);
      }
      if (c->upstream == nullptr) continue;
      if (now >= c->upstream_deadline) {
        c->upstream_timed_out = true;
        c->upstream->cancel(ignored);
      } else if (c->AbandonUnhealthy()) {
        c->upstream->cancel(ignored);  // the exchange moves the request to another member
      } else if (!c->client_gone && c->h2 == nullptr && PeerGone(c->stream.socket())) {
        // (An HTTP/2 stream's client leaving is the session's to tell.)
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
                         AccessLog* access_log, otlp::Exporter* spans, edge::EdgeCache* edge)
    : config_(config),
      pool_(pool),
      metrics_(metrics),
      tls_(tls),
      access_log_(access_log),
      spans_(spans),
      edge_(edge),
      counters_(std::make_unique<ServerCounters>()) {}

ProxyServer::~ProxyServer() {
  for (auto& w : workers_) w->Stop();
  workers_.clear();
}

int ProxyServer::open_connections() const { return counters_->open_connections.load(); }

Status ProxyServer::Bind(const net::HostPort& listen, std::string_view flag, const TlsContext* tls,
                         std::vector<int> inherited, uint16_t* port_out, std::string* address_out) {
  const std::optional<asio::ip::address> resolved = ListenAddress(listen);
  if (!resolved) {
    for (int fd : inherited) ::close(fd);
    return Status(ErrorCode::kInvalidArgument, "cannot resolve " + std::string(flag) + " host " + listen.host);
  }
  const asio::ip::address addr = *resolved;
  uint16_t port = listen.port;
  // Sockets handed over by the previous process are accepted on as they are
  // when they listen where the flag says (port 0: any); a changed address
  // is bound afresh and the old sockets close (their queued connections with them).
  for (int fd : inherited) {
    const std::optional<tcp::endpoint> ep = BoundEndpoint(fd);
    if (ep && ep->address() == addr && (port == 0 || port == ep->port())) continue;
    log::Warn(kComponent, "handed-over socket not on this address; closing it")
        .kv("flag", flag).kv("want", listen.ToString()).kv("socket", ep ? ep->address().to_string() + ":" + std::to_string(ep->port()) : "?");
    for (int f : inherited) ::close(f);
    inherited.clear();
    break;
  }
  if (!inherited.empty()) {
    // Every handed-over socket is accepted on (an unattended one would strand
    // its queue): spread over the threads; threads beyond them get a new
    // socket in the same SO_REUSEPORT group.
    for (size_t i = 0; i < inherited.size(); ++i) {
      if (Status s = workers_[i % workers_.size()]->Adopt(inherited[i], tls); !s.ok()) {
        for (size_t k = i + 1; k < inherited.size(); ++k) ::close(inherited[k]);
        return s;
      }
    }
    port = BoundEndpoint(inherited.front())->port();
    for (size_t i = inherited.size(); i < workers_.size(); ++i) {
      if (Status s = workers_[i]->Bind(tcp::endpoint(addr, port), tls); !s.ok()) return s;
    }
  } else {
    if (port != 0) {
      // SO_REUSEPORT would let a second balancer on the same port silently take
      // half the connections: a plain bind first turns that into a clear error.
      asio::io_context probe_ctx;
      tcp::acceptor probe(probe_ctx);
      const tcp::endpoint ep(addr, port);
      if (error_code ec = OpenListener(probe, ep, {.listen = false})) return ListenFailure(ep, ec);
    }
    for (auto& w : workers_) {
      if (Status s = w->Bind(tcp::endpoint(addr, port), tls); !s.ok()) return s;
      port = w->LastPort();  // port 0 picks one port for all threads
    }
  }
  *port_out = port;
  *address_out = addr.to_string() + ":" + std::to_string(port);
  return Status::Ok();
}

Status ProxyServer::Start(std::vector<int> inherited, std::vector<int> inherited_tls) {
  const int threads =
      config_.threads > 0 ? config_.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const TlsContext* tls = config_.tls_listen ? tls_ : nullptr;
  if (config_.tls_listen && (tls == nullptr || !tls->Current())) {
    for (int fd : inherited) ::close(fd);
    for (int fd : inherited_tls) ::close(fd);
    return Status(ErrorCode::kInvalidArgument, "--tls-listen needs a loaded TLS context");
  }
  if (tls == nullptr && !inherited_tls.empty()) {
    log::Warn("tls", "handed-over TLS sockets closed: no --tls-listen").kv("sockets", inherited_tls.size());
    for (int fd : inherited_tls) ::close(fd);
    inherited_tls.clear();
  }
  for (int i = 0; i < threads; ++i) workers_.push_back(std::make_unique<Worker>(config_, pool_, metrics_, *counters_, access_log_, spans_, edge_));
  std::string address, tls_address;
  if (Status s = Bind(config_.listen, "--listen", nullptr, std::move(inherited), &port_, &address); !s.ok()) {
    for (int fd : inherited_tls) ::close(fd);
    return s;
  }
  if (tls != nullptr) {
    if (Status s = Bind(*config_.tls_listen, "--tls-listen", tls, std::move(inherited_tls), &tls_port_, &tls_address); !s.ok()) return s;
  }
  for (auto& w : workers_) w->Start();
  log::Info(kComponent, "listening").kv("address", address).kv("threads", threads);
  if (tls != nullptr) log::Info("tls", "listening").kv("address", tls_address).kv("threads", threads);
  return Status::Ok();
}

std::vector<int> ProxyServer::listener_fds(bool tls) const {
  std::vector<int> fds;
  for (const auto& w : workers_) {
    std::vector<int> mine = w->ListenerFds(tls);
    fds.insert(fds.end(), mine.begin(), mine.end());
  }
  return fds;
}

void ProxyServer::StopAccepting() {
  for (auto& w : workers_) w->StopAccepting();
}

int ProxyServer::active_requests() const { return counters_->active_requests.load(); }

void ProxyServer::Shutdown(std::chrono::milliseconds drain) {
  ServerCounters& c = *counters_;
  if (c.draining.exchange(true)) return;
  log::Info(kComponent, "draining").kv("open_connections", c.open_connections.load()).kv("in_flight", c.active_requests.load());
  for (auto& w : workers_) w->BeginDrain();
  const auto deadline = Clock::now() + drain;
  while (Clock::now() < deadline && (c.active_requests.load() > 0 || c.open_connections.load() > 0)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    // Connections that finished a request in the meantime are idle now: they close too.
    for (auto& w : workers_) w->BeginDrain();
  }
  if (c.active_requests.load() > 0 || c.open_connections.load() > 0)
    log::Warn(kComponent, "drain time over; closing what is left")
        .kv("in_flight", c.active_requests.load())
        .kv("open_connections", c.open_connections.load());
  for (auto& w : workers_) w->Stop();
}

}  // namespace webtier::balancer
