// Admin endpoint: a small Beast server on its own thread and io_context.
#include "webtier/balancer/admin/admin_server.h"

#include <unistd.h>

#include <map>
#include <thread>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "admin/admin_forward.h"
#include "edge/edge_http.h"
#include "engine/io.h"
#include "admin/status_history.h"
#include "webtier/balancer/clock.h"
#include "webtier/balancer/http/admin_path.h"
#include "webtier/common/log.h"

namespace webtier::balancer {

namespace {

// The human page: renders /status every 2 s, no dependencies, no external
// assets; the sparklines are inline SVG drawn from /status's `spark` series.
constexpr std::string_view kStatusPage = R"html(<!doctype html>
<html><head><meta charset="utf-8"><title>webtier balancer</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;font-size:14px}
h1{font-size:1.4em;margin:0 0 .3em}h2{font-size:1.1em;margin:1.2em 0 .4em}
table{border-collapse:collapse}td,th{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:left;vertical-align:middle}
th{background:#f4f4f4;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
.healthy{color:#080}.ejected,.unhealthy,.e5{color:#b00}.pending,.unchecked{color:#a60}.muted{color:#888}
.dot{display:inline-block;width:.7em;height:.7em;border-radius:50%;margin-right:2px}
.pass{background:#2a2}.fail{background:#d22}.timeout{background:#e90}
.box{display:inline-block;margin:0 1.5em .5em 0;vertical-align:top}.box b{display:block;font-size:1.3em}
svg.spark{vertical-align:middle}td.checks{white-space:nowrap}
</style></head><body>
<h1>webtier balancer</h1>
<p id="summary" class="muted">loading…</p>
<div id="totals"></div>
<h2>Members</h2>
<table><thead><tr><th>id</th><th>address</th><th>state</th><th>health</th><th>last checks</th><th>ejections</th>
<th>down</th><th>in flight</th><th>req/s (peak)</th><th>2xx</th><th>3xx</th><th>4xx</th><th>5xx</th><th>p50 / p99 ms</th>
<th>bytes in / out</th><th>X-Cache hit / miss / other</th><th>last 5 min</th><th>zone</th><th>weight</th></tr></thead>
<tbody id="members"></tbody></table>
<p class="muted"><a href="/metrics">/metrics</a> · <a href="/status">/status</a> (this page's data) · refreshes every 2 s ·
sparklines: answers per second (blue) and 5xx per second (red), the last 5 minutes</p>
<script>
function esc(s){return String(s).replace(/[&<>"]/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));}
function num(n,d){if(n===null||n===undefined)return '–';return (+n).toFixed(d||0);}
function bytes(n){const u=['B','KiB','MiB','GiB','TiB'];let i=0;n=+n||0;while(n>=1024&&i<u.length-1){n/=1024;i++;}return n.toFixed(i?1:0)+' '+u[i];}
function spark(sp){
  const a=(sp&&sp.answers)||[],e=(sp&&sp.errors)||[],w=160,h=26;
  const max=Math.max(1,...a,...e),step=w/Math.max(1,a.length-1);
  const pts=v=>v.map((x,i)=>(i*step).toFixed(1)+','+(h-1-x/max*(h-2)).toFixed(1)).join(' ');
  let s='<svg class="spark" width="'+w+'" height="'+h+'" data-points="'+a.length+'"><rect width="'+w+'" height="'+h+'" fill="#fafafa"/>';
  if(a.length>1)s+='<polyline class="answers" fill="none" stroke="#36c" stroke-width="1.2" points="'+pts(a)+'"/>';
  if(e.some(x=>x>0))s+='<polyline class="errors" fill="none" stroke="#c33" stroke-width="1.2" points="'+pts(e)+'"/>';
  return s+'</svg>';
}
function checks(cs){return (cs||[]).map(c=>'<span class="dot '+esc(c.result)+'" title="'+esc(c.time+' '+c.result)+'"></span>').join('');}
function ejections(m){
  const r=m.ejection_reasons||[];
  if(!r.length)return String(m.ejections);
  return m.ejections+' <span class="ejected" title="'+esc(r.map(x=>x.time+' '+x.reason+': '+x.why+' ('+x.for_ms+' ms)').join('\n'))+'">'+
    esc(r[0].reason)+': '+esc(r[0].why)+'</span>';
}
function codes(m,k){const c=(m.codes||{})[k]||0,r=(m.code_rates||{})[k]||0;return '<td class="n'+(k=='5xx'&&c?' e5':'')+'" title="'+num(r,1)+'/s">'+c+'</td>';}
async function refresh(){
  try{
    const s=await (await fetch('/status',{cache:'no-store'})).json(),t=s.totals||{};
    document.getElementById('summary').textContent=
      'policy '+s.policy+' · zone '+(s.zone||'none')+' · ZooKeeper '+s.zookeeper.state+' · pool from '+s.source+' · '+
      s.members.length+' members · TLS '+(s.tls?'on':'off');
    const rej=Object.entries(t.rejected||{}).map(([k,v])=>esc(k)+' '+v).join(', ')||'none';
    document.getElementById('totals').innerHTML=
      '<div class="box">answers<b>'+num(t.answers)+'</b></div>'+
      '<div class="box">req/s (peak)<b>'+num(t.rate,1)+' ('+num(t.peak_rate)+')</b></div>'+
      '<div class="box">2xx / 3xx / 4xx / 5xx<b>'+['2xx','3xx','4xx','5xx'].map(k=>(t.codes||{})[k]||0).join(' / ')+'</b></div>'+
      '<div class="box">p50 / p99 ms (1 min)<b>'+num(t.p50_ms,2)+' / '+num(t.p99_ms,2)+'</b></div>'+
      '<div class="box">bytes in / out<b>'+bytes(t.bytes_in)+' / '+bytes(t.bytes_out)+'</b></div>'+
      '<div class="box">plain / TLS<b>'+num(t.plain)+' / '+num(t.tls)+'</b></div>'+
      '<div class="box">HTTP/1 / HTTP/2<b id="protocols">'+num(t.http1)+' / '+num(t.h2)+'</b></div>'+
      (s.edge_cache&&s.edge_cache.enabled?'<div class="box">edge hit ratio (objects, bytes)<b id="edge">'+
        num(100*s.edge_cache.hit_ratio,1)+'% ('+num(s.edge_cache.objects)+', '+bytes(s.edge_cache.bytes)+')</b></div>':'')+
      '<div class="box">last 5 min<b id="total-spark">'+spark(t.spark)+'</b></div>'+
      '<p class="muted">rejected before a member: '+rej+'</p>';
    document.getElementById('members').innerHTML=s.members.map(m=>
      '<tr class="member" id="member-'+esc(m.id)+'" data-state="'+esc(m.state)+'"><td>'+esc(m.id)+'</td><td>'+esc(m.address)+
      '</td><td class="'+esc(m.state)+'">'+esc(m.state)+'</td><td class="'+esc(m.health)+'">'+esc(m.health)+
      '</td><td class="checks">'+checks(m.checks)+'</td><td class="ejections">'+ejections(m)+'</td><td class="n">'+num(m.downtime_s)+
      ' s</td><td class="n">'+m.in_flight+'</td><td class="n">'+num(m.rate,1)+' ('+num(m.peak_rate)+')</td>'+
      codes(m,'2xx')+codes(m,'3xx')+codes(m,'4xx')+codes(m,'5xx')+
      '<td class="n">'+num(m.p50_ms,2)+' / '+num(m.p99_ms,2)+'</td><td class="n">'+bytes(m.bytes_in)+' / '+bytes(m.bytes_out)+
      '</td><td class="n">'+((m.cache||{}).hit||0)+' / '+((m.cache||{}).miss||0)+' / '+((m.cache||{}).other||0)+
      '</td><td class="spark">'+spark(m.spark)+'</td><td>'+esc(m.zone)+'</td><td>'+m.weight+'</td></tr>').join('');
  }catch(e){document.getElementById('summary').textContent='status unavailable: '+e;}
}
refresh();setInterval(refresh,2000);
</script></body></html>
)html";

// "ejected", "unhealthy" (failing its checks, or none passed yet) or "healthy":
// whether and why the member gets no new requests.
std::string_view MemberState(const Member& h, Clock::time_point now) {
  if (h.Ejected(now)) return "ejected";
  return HealthAdmits(h.health()) ? "healthy" : "unhealthy";
}

// A query parameter's value, %XX decoded (a malformed escape stays as it is).
std::string PercentDecoded(std::string_view value) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '%' && i + 2 < value.size() && hex(value[i + 1]) >= 0 && hex(value[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(value[i + 1]) * 16 + hex(value[i + 2])));
      i += 2;
    } else {
      out.push_back(value[i]);
    }
  }
  return out;
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
  int fd = -1;  // the acceptor's socket
  StatusHistory history;
  edge::EdgeCache* edge = nullptr;    // --edge-cache-bytes; null: off
  std::function<bool()> following;    // the edge cache's invalidation channel is subscribed

  // One sample a second for the status page's rates and sparklines.
  awaitable<void> SampleEverySecond() {
    Timer timer(ctx);
    auto next = Clock::now();
    for (;;) {
      history.Sample(pool.Snapshot()->members, proxy_metrics.client_answers.Read(), Clock::now());
      next += std::chrono::seconds(1);
      timer.expires_at(next);
      auto [ec] = co_await timer.async_wait(kUse);
      if (ec) co_return;
    }
  }

  std::string StatusDocument() const {
    using nlohmann::json;
    auto snap = pool.Snapshot();
    const auto now = Clock::now();
    json members = json::array();
    for (const auto& h : snap->members) {
      members.push_back({{"id", h->serverset().id},
                         {"address", h->serverset().Address()},
                         {"znode", h->key()},
                         {"state", MemberState(*h, now)},
                         {"health", HealthName(h->health())},
                         {"last_check", CheckResultName(h->last_check())},
                         {"ejections", h->ejections()},
                         {"in_flight", h->in_flight.load()},
                         {"requests", h->requests.load()},
                         {"zone", h->serverset().zone},
                         {"weight", h->serverset().weight}});
      json& m = members.back();
      m.update(history.MemberFigures(h->key()));
      json checks = json::array();
      for (const auto& c : h->history.Checks()) checks.push_back({{"time", log::UtcTimestamp(c.time)}, {"result", CheckResultName(c.result)}});
      m["checks"] = checks;
      json ejections = json::array();
      for (const auto& e : h->history.Ejections()) {
        ejections.push_back({{"time", log::UtcTimestamp(e.time)}, {"reason", e.reason}, {"why", e.why}, {"for_ms", e.for_ms}});
      }
      m["ejection_reasons"] = ejections;
    }
    json totals = history.TotalFigures();
    totals["plain"] = proxy_metrics.answers_by_transport[0].load(std::memory_order_relaxed);
    totals["tls"] = proxy_metrics.answers_by_transport[1].load(std::memory_order_relaxed);
    totals["http1"] = proxy_metrics.answers_by_protocol[0].load(std::memory_order_relaxed);
    totals["h2"] = proxy_metrics.answers_by_protocol[1].load(std::memory_order_relaxed);
    json rejected = json::object();
    for (size_t i = 0; i < proxy_metrics.rejected_requests.size(); ++i) {
      const double n = proxy_metrics.rejected_requests[i]->Value();
      if (n > 0) rejected[RejectionName(static_cast<Rejection>(i))] = static_cast<uint64_t>(n);
    }
    totals["rejected"] = rejected;
    json edge_doc = {{"enabled", edge != nullptr}};
    if (edge != nullptr) {
      const edge::EdgeStats e = edge->Stats();
      const uint64_t lookups = e.hits + e.misses + e.refreshes;
      edge_doc.update({{"capacity_bytes", edge->options().capacity_bytes},
                       {"bytes", e.bytes},
                       {"objects", e.objects},
                       {"hits", e.hits},
                       {"misses", e.misses},
                       {"refreshes", e.refreshes},
                       {"hit_ratio", lookups == 0 ? 0.0 : static_cast<double>(e.hits) / static_cast<double>(lookups)},
                       {"evictions", e.evictions},
                       {"rejected", e.rejected},
                       {"invalidated", e.erased},
                       {"window_ms", edge->options().window.count()},
                       {"invalidation_channel", following && following()}});
    }
    json doc = {{"policy", std::string(PolicyName(pool.policy()))},
                {"zookeeper", {{"state", registry.zk_state()}, {"connect", config.zk.connect}, {"path", config.zk.path}}},
                {"source", registry.source()},
                {"zone", config.health.zone},
                {"tls", config.tls_listen.has_value()},
                {"draining", proxy_metrics.draining.Value() > 0},
                {"predecessor_connections", static_cast<int64_t>(proxy_metrics.predecessor_connections.Value())},
                {"h2_connections", static_cast<int64_t>(proxy_metrics.h2_connections.Value())},
                {"totals", totals},
                {"edge_cache", edge_doc},
                {"members", members}};
    return doc.dump() + "\n";
  }

  // After the tier purged what `target` names: this balancer's copy goes at
  // once. A tag names URLs only the tier knows: they come on the channel,
  // or, without one, everything goes.
  void PurgeEdge(std::string_view target) {
    const size_t q = target.find('?');
    if (q == std::string_view::npos) return;
    bool tag = false;
    for (std::string_view rest = target.substr(q + 1); !rest.empty();) {
      const size_t amp = rest.find('&');
      const std::string_view param = rest.substr(0, amp);
      if (param.starts_with("path=")) {
        const std::string url = edge::UrlOfTarget(PercentDecoded(param.substr(5)));
        if (!url.empty()) {
          const size_t n = edge->Erase(url);
          log::Info("admin", "edge cache purged").kv("url", url).kv("objects", n);
        }
      } else if (param.starts_with("tag=")) {
        tag = true;
      }
      if (amp == std::string_view::npos) break;
      rest.remove_prefix(amp + 1);
    }
    if (tag && !(following && following())) {
      const size_t n = edge->EraseAll();
      log::Info("admin", "edge cache emptied for a tag purge (no invalidation channel)").kv("objects", n);
    }
  }

  void RefreshPoolGauges() {
    auto snap = pool.Snapshot();
    const auto now = Clock::now();
    std::map<std::string_view, int> by_state;
    for (const auto& h : snap->members) by_state[MemberState(*h, now)]++;
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
      if (edge != nullptr) {
        proxy_metrics.RecordEdge(edge->Stats());
        proxy_metrics.edge_channel->Set(following && following() ? 1 : 0);
      }
      res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
      res.body() = registry_metrics.Render();
    } else if (target == "/health" || target == "/healthz") {
      res.set(http::field::content_type, "application/json");
      auto snap = pool.Snapshot();
      res.body() = nlohmann::json{{"status", "healthy"},
                                  {"members", snap->members.size()},
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
      stream.expires_after(std::chrono::seconds(30));  // the stream's own steady timer: real time, not Clock
      auto [ec, n] = co_await http::async_read(stream, buffer, parser, kUse);
      if (ec) break;
      const auto& req = parser.get();
      http::response<http::string_body> res;
      if (IsAdminPath(std::string_view(req.target().data(), req.target().size()))) {
        res = co_await ForwardAdminRequest(req, pool.Snapshot()->members,
                                           std::chrono::milliseconds(config.request_timeout_ms));
        if (edge != nullptr && res.result_int() / 100 == 2) PurgeEdge(std::string_view(req.target().data(), req.target().size()));
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

Status AdminServer::Start(int inherited) {
  const auto& l = impl_->config.admin_listen;
  const std::optional<asio::ip::address> addr = ListenAddress(l);
  if (!addr) {
    if (inherited >= 0) ::close(inherited);
    return webtier::Status(ErrorCode::kInvalidArgument, "cannot resolve --admin-listen host " + l.host);
  }
  auto& a = impl_->acceptor;
  if (inherited >= 0) {
    const std::optional<tcp::endpoint> ep = BoundEndpoint(inherited);
    if (ep && ep->address() == *addr && (l.port == 0 || l.port == ep->port())) {
      if (error_code ec = AdoptListener(a, inherited))
        return webtier::Status(ErrorCode::kUnavailable, "cannot accept on the handed-over admin socket: " + ec.message());
    } else {
      log::Warn("admin", "handed-over socket not on --admin-listen; closing it").kv("want", l.ToString());
      ::close(inherited);
    }
  }
  if (!a.is_open()) {
    if (error_code ec = OpenListener(a, tcp::endpoint(*addr, l.port)))
      return webtier::Status(ErrorCode::kUnavailable, "cannot listen on admin address " + l.ToString() + ": " + ec.message());
  }
  impl_->fd = a.native_handle();
  impl_->port = a.local_endpoint().port();
  asio::co_spawn(impl_->ctx, impl_->Accept(), asio::detached);
  asio::co_spawn(impl_->ctx, impl_->SampleEverySecond(), asio::detached);
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

int AdminServer::listener_fd() const { return impl_->fd; }

void AdminServer::StopAccepting() {
  asio::post(impl_->ctx, [impl = impl_.get()] {
    error_code ec;
    impl->acceptor.close(ec);
  });
}

std::string AdminServer::StatusJson() const { return impl_->StatusDocument(); }

void AdminServer::SetEdgeCache(edge::EdgeCache* edge, std::function<bool()> following) {
  impl_->edge = edge;
  impl_->following = std::move(following);
}

}  // namespace webtier::balancer
