// Admin endpoint: a small Beast server on its own thread and io_context.
#include "webtier/balancer/admin_server.h"

#include <map>
#include <thread>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "admin_forward.h"
#include "io.h"
#include "webtier/balancer/admin_path.h"
#include "webtier/common/log.h"

namespace webtier::balancer {

namespace {

// The human page: renders /status every 2 s, no dependencies.
constexpr std::string_view kStatusPage = R"html(<!doctype html>
<html><head><meta charset="utf-8"><title>webtier balancer</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse}td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}
.healthy{color:#080}.ejected,.unhealthy{color:#b00}.muted{color:#888}
</style></head><body>
<h1>webtier balancer</h1>
<p id="summary" class="muted">loading…</p>
<table><thead><tr><th>id</th><th>address</th><th>state</th><th>health</th><th>last check</th><th>ejections</th><th>in flight</th><th>requests</th><th>zone</th><th>weight</th></tr></thead>
<tbody id="members"></tbody></table>
<p class="muted"><a href="/metrics">/metrics</a> · <a href="/status">/status</a> · refreshes every 2 s</p>
<script>
function esc(s){return String(s).replace(/[&<>"]/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));}
async function refresh(){
  try{
    const s=await (await fetch('/status',{cache:'no-store'})).json();
    document.getElementById('summary').textContent=
      'policy '+s.policy+' · zone '+(s.zone||'none')+' · ZooKeeper '+s.zookeeper.state+' · pool from '+s.source+' · '+s.members.length+' members';
    document.getElementById('members').innerHTML=s.members.map(m=>
      '<tr><td>'+esc(m.id)+'</td><td>'+esc(m.address)+'</td><td class="'+esc(m.state)+'">'+esc(m.state)+
      '</td><td class="'+esc(m.health)+'">'+esc(m.health)+'</td><td>'+esc(m.last_check)+'</td><td>'+m.ejections+
      '</td><td>'+m.in_flight+'</td><td>'+m.requests+'</td><td>'+esc(m.zone)+'</td><td>'+m.weight+'</td></tr>').join('');
  }catch(e){document.getElementById('summary').textContent='status unavailable: '+e;}
}
refresh();setInterval(refresh,2000);
</script></body></html>
)html";

// "ejected", "unhealthy" (failing its checks, or none passed yet) or "healthy":
// whether and why the member gets no new requests.
std::string_view MemberState(const Host& h, Clock::time_point now) {
  if (h.Ejected(now)) return "ejected";
  return HealthAdmits(h.health()) ? "healthy" : "unhealthy";
}

}  // namespace

struct AdminServer::Impl {
  Impl(const Config& c, Pool& p, const MemberRegistry& r, ProxyMetrics& m, metrics::Registry& rm)
      : config(c), pool(p), registry(r), proxy_metrics(m), registry_metrics(rm) {}

  const Config& config;
  Pool& pool;
  const MemberRegistry& registry;
  ProxyMetrics& proxy_metrics;
  metrics::Registry& registry_metrics;
  asio::io_context ctx{1};
  tcp::acceptor acceptor{ctx};
  std::thread thread;
  uint16_t port = 0;

  std::string StatusDocument() const {
    using nlohmann::json;
    auto snap = pool.Snapshot();
    const auto now = Clock::now();
    json members = json::array();
    for (const auto& h : snap->hosts) {
      members.push_back({{"id", h->member().id},
                         {"address", h->member().Address()},
                         {"znode", h->key()},
                         {"state", MemberState(*h, now)},
                         {"health", HealthName(h->health())},
                         {"last_check", CheckResultName(h->last_check())},
                         {"ejections", h->ejections()},
                         {"in_flight", h->in_flight.load()},
                         {"requests", h->requests.load()},
                         {"zone", h->member().zone},
                         {"weight", h->member().weight}});
    }
    json doc = {{"policy", std::string(PolicyName(pool.policy()))},
                {"zookeeper", {{"state", registry.zk_state()}, {"connect", config.zk.connect}, {"path", config.zk.path}}},
                {"source", registry.source()},
                {"zone", config.health.zone},
                {"members", members}};
    return doc.dump() + "\n";
  }

  void RefreshPoolGauges() {
    auto snap = pool.Snapshot();
    const auto now = Clock::now();
    std::map<std::string_view, int> by_state;
    for (const auto& h : snap->hosts) by_state[MemberState(*h, now)]++;
    proxy_metrics.members_healthy.Set(by_state["healthy"]);
    proxy_metrics.members_ejected.Set(by_state["ejected"]);
    proxy_metrics.health.members_unhealthy.Set(by_state["unhealthy"]);
  }

  http::response<http::string_body> Handle(const http::request<http::string_body>& req) {
    http::response<http::string_body> res{http::status::ok, req.version()};
    std::string_view target(req.target().data(), req.target().size());
    if (auto q = target.find('?'); q != std::string_view::npos) target = target.substr(0, q);
    if (req.method() != http::verb::get && req.method() != http::verb::head) {
      res.result(http::status::method_not_allowed);
      res.set(http::field::content_type, "application/json");
      res.body() = "{\"error\":\"method not allowed\"}\n";
    } else if (target == "/metrics") {
      RefreshPoolGauges();
      res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
      res.body() = registry_metrics.Render();
    } else if (target == "/health" || target == "/healthz") {
      res.set(http::field::content_type, "application/json");
      auto snap = pool.Snapshot();
      res.body() = nlohmann::json{{"status", "healthy"},
                                  {"members", snap->hosts.size()},
                                  {"zookeeper", registry.zk_state()}}
                       .dump() +
                   "\n";
    } else if (target == "/status") {
      res.set(http::field::content_type, "application/json");
      res.body() = StatusDocument();
    } else if (target == "/" || target == "/status.html") {
      res.set(http::field::content_type, "text/html; charset=utf-8");
      res.body() = std::string(kStatusPage);
    } else {
      res.result(http::status::not_found);
      res.set(http::field::content_type, "application/json");
      res.body() = "{\"error\":\"not found\"}\n";
    }
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    return res;
  }

  awaitable<void> Serve(tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(16 * 1024);
      parser.body_limit(64 * 1024);
      stream.expires_after(std::chrono::seconds(30));
      auto [ec, n] = co_await http::async_read(stream, buffer, parser, kUse);
      if (ec) break;
      const auto& req = parser.get();
      http::response<http::string_body> res;
      if (IsAdminPath(std::string_view(req.target().data(), req.target().size()))) {
        res = co_await ForwardAdminRequest(req, pool.Snapshot()->hosts,
                                           std::chrono::milliseconds(config.request_timeout_ms));
        res.keep_alive(req.keep_alive());
      } else {
        res = Handle(req);
      }
      const bool keep = res.keep_alive();
      auto [wec, wn] = co_await http::async_write(stream, res, kUse);
      if (wec || !keep) break;
    }
    error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  awaitable<void> Accept() {
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(kUse);
      if (ec) {
        if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
        continue;
      }
      asio::co_spawn(ctx, Serve(std::move(socket)), asio::detached);
    }
  }
};

AdminServer::AdminServer(const Config& config, Pool& pool, const MemberRegistry& registry, ProxyMetrics& metrics,
                         metrics::Registry& registry_metrics)
    : impl_(std::make_unique<Impl>(config, pool, registry, metrics, registry_metrics)) {}

AdminServer::~AdminServer() { Stop(); }

Status AdminServer::Start() {
  const auto& l = impl_->config.admin_listen;
  const std::optional<asio::ip::address> addr = ListenAddress(l);
  if (!addr) return webtier::Status(ErrorCode::kInvalidArgument, "cannot resolve --admin-listen host " + l.host);
  auto& a = impl_->acceptor;
  if (error_code ec = OpenListener(a, tcp::endpoint(*addr, l.port)))
    return webtier::Status(ErrorCode::kUnavailable, "cannot listen on admin address " + l.ToString() + ": " + ec.message());
  impl_->port = a.local_endpoint().port();
  asio::co_spawn(impl_->ctx, impl_->Accept(), asio::detached);
  impl_->thread = std::thread([this] { impl_->ctx.run(); });
  log::Info("admin", "listening").kv("address", addr->to_string() + ":" + std::to_string(impl_->port));
  return webtier::Status::Ok();
}

void AdminServer::Stop() {
  if (!impl_) return;
  impl_->ctx.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

uint16_t AdminServer::port() const { return impl_->port; }

std::string AdminServer::StatusJson() const { return impl_->StatusDocument(); }

}  // namespace webtier::balancer
