// NodeServer: Pistache endpoint plus the built-in routes.
#include "webtier/webnode/server.h"

#include <pistache/http.h>
#include <pistache/peer.h>

#include <memory>
#include <optional>
#include <unordered_map>
#include <utility>

#include <nlohmann/json.hpp>

#include "webtier/cache/request_target.h"
#include "webtier/common/log.h"
#include "webtier/common/otlp.h"
#include "webtier/common/trace_context.h"
#include "webtier/webnode/raw_request_headers.h"
#include "webtier/webnode/request_head.h"

namespace webtier::webnode {

using namespace Pistache;

struct NodeServer::Shared {
  Shared(const Config& c, metrics::Registry& r, ContentService& content_service, NodeProbes p, otlp::Exporter* e)
      : config(c), registry(r), http_metrics(r.prom()), content(content_service), probes(std::move(p)), spans(e) {
    served_by = config.id;
    greeting = nlohmann::json{{"message", "Hello from " + config.name + "!"}, {"server", config.id}}.dump();
  }

  const Config& config;
  metrics::Registry& registry;
  HttpMetrics http_metrics;
  ContentService& content;
  NodeProbes probes;
  std::string served_by;
  std::string greeting;  // the body of GET /, built once
  std::atomic<bool> draining{false};
  otlp::Exporter* spans;  // --otlp-endpoint; null: off
};

namespace {

// The answer's Connection: the client's own choice, mirrored; without one,
// HTTP/1.1 keeps the connection and HTTP/1.0 closes it (Pistache 0.0.5 said
// Close to every request without the header, breaking HTTP/1.1's default).
Http::ConnectionControl ConnectionFor(const Http::Request& request) {
  if (const auto c = request.headers().tryGet<Http::Header::Connection>()) return c->control();
  return request.version() == Http::Version::Http11 ? Http::ConnectionControl::KeepAlive
                                                     : Http::ConnectionControl::Close;
}

// Request fields that would make the origin build its answer for another
// URL, method or site than the one the cache keys it under. The balancer drops
// them too; a node may be reached directly. X-Forwarded-Host and
// X-Forwarded-Proto are replaced by what the node keyed on.
bool UnkeyedOverride(std::string_view name) {
  for (std::string_view n : {"X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Scheme", "X-Forwarded-Port",
                             "X-Forwarded-Server", "X-Original-URL", "X-Rewrite-URL", "X-HTTP-Method-Override",
                             "Forwarded"}) {
    if (cache::EqualsIgnoreCase(name, n)) return true;
  }
  return false;
}

// The one place a Pistache request becomes the plain Request content sees.
// `scheme` and `host` are what the request is keyed on (host normalised);
// the origin is given exactly those, as Host (unless --origin-host), and as
// X-Forwarded-Host / X-Forwarded-Proto.
Request ToContentRequest(const Http::Request& in, std::string_view scheme, std::string host, const Config& config,
                         const std::string& traceparent) {
  Request r;
  r.method = Http::methodString(in.method());
  r.path = in.resource();
  r.query = in.query().as_str();
  if (!r.query.empty() && r.query.front() == '?') r.query.erase(0, 1);
  r.scheme = std::string(scheme);
  r.host = std::move(host);
  // Every header as it arrived (ParseRequestHeadersRaw: Pistache keeps a raw
  // copy of each, typed or not; one value per name), but for the overrides.
  for (const auto& [name, raw] : in.headers().rawList()) {
    if (UnkeyedOverride(raw.name())) continue;
    if (cache::EqualsIgnoreCase(raw.name(), "Host")) {
      r.headers.emplace_back(raw.name(), r.host);
    } else if (!traceparent.empty() && cache::EqualsIgnoreCase(raw.name(), "traceparent")) {
      continue;  // the node's own goes on instead
    } else {
      r.headers.emplace_back(raw.name(), raw.value());
    }
  }
  r.headers.emplace_back("X-Forwarded-Host", config.origin_host.empty() ? r.host : config.origin_host);
  r.headers.emplace_back("X-Forwarded-Proto", r.scheme);
  if (!traceparent.empty()) r.headers.emplace_back("traceparent", traceparent);
  // Pistache also parses Cookie into a jar; without the raw line (older
  // Pistache builds keep none), rebuild it for the origin and so the cache
  // sees that the request carries credentials.
  std::string cookie;
  for (const auto& c : in.cookies()) {
    if (!cookie.empty()) cookie += "; ";
    cookie += c.name + "=" + c.value;
  }
  if (!cookie.empty() && !cache::HasHeader(r.headers, "Cookie")) r.headers.emplace_back("Cookie", std::move(cookie));
  r.body = in.body();
  return r;
}

// The raw value of request header `name`, or nullopt when absent.
std::optional<std::string> RawHeader(const Http::Request& in, std::string_view name) {
  for (const auto& [n, raw] : in.headers().rawList()) {
    if (cache::EqualsIgnoreCase(raw.name(), name)) return raw.value();
  }
  return std::nullopt;
}

// What this request's lines and span say (Reply::Trace). With spans on, the
// node's span continues the caller's trace (or starts one) and is the
// parent the origin sees: `traceparent` is set to it in `*outgoing`.
Reply::Trace TraceOf(const Http::Request& request, std::string host, const std::string& path, bool access,
                     otlp::Exporter* spans, std::string* outgoing) {
  Reply::Trace t;
  t.host = std::move(host);
  t.path = path;
  t.request_id = RawHeader(request, "X-Request-Id").value_or("");
  t.access = access;
  t.spans = spans;
  const std::string header = RawHeader(request, "traceparent").value_or("");
  const std::optional<TraceParent> parent = ParseTraceparent(header);  // views into `header`
  if (parent) {
    t.trace_id = parent->trace_id;
    t.parent_id = parent->parent_id;
  }
  if (spans == nullptr) return t;
  const RequestTrace mine = ChildOf(parent);
  t.trace_id.assign(mine.trace_id, kTraceIdLength);
  t.span_id.assign(mine.span_id, kSpanIdLength);
  *outgoing = TraceparentValue(mine);
  return t;
}

class NodeHandler : public Http::Handler {
 public:
  HTTP_PROTOTYPE(NodeHandler)

  explicit NodeHandler(NodeServer::Shared* shared) : shared_(shared) {}

  // Pistache's own onInput, with one difference: what its parser throws on
  // is the request's fault. Pistache 0.0.5 parses Cookie itself while reading
  // the head and throws a plain exception on a pair without '=' ("Cookie:
  // foo"), which its onInput answers with 500; here every parse failure is a
  // 4xx (its HttpError's own code, else 400), logged and counted.
  //
  // A connection whose answer said close takes no further request: what
  // arrives on it until the client closes is dropped (after a refused request
  // it is the rest of a message whose framing is unknown).
  //
  // The head goes to Pistache's parser only once HeadScanner has seen all of
  // it (see request_head.h): too many fields are refused with 431 as soon as
  // they arrive, and a request target that is not origin-form with 400
  // before anything else reads it.
  void onInput(const char* buffer, size_t len, const std::shared_ptr<Tcp::Peer>& peer) override {  // Tcp::Handler
    if (Closing(peer)) return;
    std::shared_ptr<Http::RequestParser> parser = getParser(peer);
    Incoming& incoming = Head(peer);
    HeadScanner& head = incoming.head;
    incoming.fed += len;
    try {
      if (!parser->feed(buffer, len)) {
        Refuse(*parser, peer, Http::Code::Request_Entity_Too_Large, "request exceeds --max-request-bytes", "too_large");
        return;
      }
      if (head.state() == HeadScanner::State::kMore) {
        switch (head.Feed(std::string_view(buffer, len))) {
          case HeadScanner::State::kMore:
            return;
          case HeadScanner::State::kTooManyFields:
            Refuse(*parser, peer, Http::Code::Request_Header_Fields_Too_Large,
                   "more header fields than --max-header-fields", "too_many_fields");
            return;
          case HeadScanner::State::kDuplicateHost:
            Refuse(*parser, peer, Http::Code::Bad_Request, "more than one Host field", "bad_host");
            return;
          case HeadScanner::State::kDone:
            if (!cache::AcceptableTarget(head.method(), head.target())) {
              Refuse(*parser, peer, Http::Code::Bad_Request, "request target is not origin-form", "bad_target");
              return;
            }
            break;
        }
      }
      if (parser->parse() != Http::Private::State::Done) return;
    } catch (const Http::HttpError& e) {
      // Pistache says 400 to a method it does not know; RFC 9110 15.6.2 says 501.
      const bool unknown_method = e.reason() == "Unknown HTTP request method";
      Refuse(*parser, peer, unknown_method ? Http::Code::Not_Implemented : static_cast<Http::Code>(e.code()), e.reason(),
             "unparsable");
      return;
    } catch (const std::exception& e) {
      Refuse(*parser, peer, Http::Code::Bad_Request, e.what(), "unparsable");
      return;
    }
    Http::Request& request = parser->request;
    // Bytes after this request are the next ones (pipelining). Pistache's
    // parser drops them on reset, so they are fed again below. Where a
    // chunked body ends is not known here: after one, the connection closes
    // (a pipelining client retries what was not answered, RFC 9112 9.3.2).
    const bool chunked = RawHeader(request, "Transfer-Encoding").has_value();
    const size_t length = head.head_bytes() + request.body().size();
    const size_t next = incoming.fed > length ? std::min(incoming.fed - length, len) : 0;
    head.Reset();
    incoming.fed = 0;
    Http::ResponseWriter writer(request.version(), transport(), this, peer);
    request.copyAddress(peer->address());
    Http::ConnectionControl connection = ConnectionFor(request);
    if (chunked && next > 0) connection = Http::ConnectionControl::Close;
    writer.headers().add<Http::Header::Connection>(connection);
    if (connection == Http::ConnectionControl::Close) closing_.insert_or_assign(peer.get(), peer);
    peer->setIdle(false);
    try {
      onRequest(request, std::move(writer));
    } catch (const std::exception& e) {  // a Reply answers before it is destroyed; this is the last resort
      log::Error("http", "request handler failed").kv("err", e.what());
    }
    parser->reset();
    if (next > 0) onInput(buffer + len - next, next, peer);  // stops at once after a close
  }

  void onDisconnection(const std::shared_ptr<Tcp::Peer>& peer) override {  // Tcp::Handler
    closing_.erase(peer.get());
    heads_.erase(peer.get());
    Http::Handler::onDisconnection(peer);
  }

  void onRequest(const Http::Request& request, Http::ResponseWriter writer) override {  // Http::Handler
    auto& s = *shared_;
    const std::string& resource = request.resource();
    const auto method = request.method();
    const bool get = method == Http::Method::Get || method == Http::Method::Head;
    const char* method_name = get ? (method == Http::Method::Get ? "GET" : "HEAD") : Http::methodString(method);
    Reply reply(std::move(writer), method_name, &s.http_metrics, &s.served_by);

    // The site the request is for: its scheme as the balancer says it, its
    // Host checked and normalised. HTTP/1.1 requires a Host (RFC 9112 3.2);
    // an HTTP/1.0 request without one is for the empty host.
    const std::string_view scheme = cache::SchemeFrom(RawHeader(request, "X-Forwarded-Proto").value_or(""));
    const std::optional<std::string> raw_host = RawHeader(request, "Host");
    std::optional<std::string> host = cache::NormalizeHost(raw_host.value_or(""), scheme);
    std::string traceparent;  // the node's own, for the origin (with spans on)
    if (s.config.access_log || s.spans || log::Enabled(log::Level::kDebug)) {
      reply.set_trace(TraceOf(request, raw_host.value_or(""), resource, s.config.access_log, s.spans, &traceparent));
    }
    if (!host.has_value() || (!raw_host.has_value() && request.version() == Http::Version::Http11)) {
      RefuseRequest(reply, 400, raw_host.has_value() ? "invalid Host" : "no Host", "bad_host");
      return;
    }

    // /health is the node's own whatever the Host (the balancer checks it by
    // address): ok, or 503 while draining. Nothing else is said here; the
    // details are on the admin listener.
    if (get && resource == "/health") {
      reply.set_route("/health");
      reply.AddHeader("Cache-Control", "no-store");
      const bool draining = s.draining.load();
      reply.Send(draining ? 503 : 200, draining ? "draining\n" : "ok\n", "text/plain; charset=utf-8");
      return;
    }
    if (!cache::HostAllowed(*host, s.config.allowed_hosts)) {
      RefuseRequest(reply, 421, "Host not served here (--host)", "misdirected");
      return;
    }
    // OPTIONS * (the only asterisk-form target let through) asks about the
    // server, not a resource: answered here, never sent to the origin.
    if (resource == "*") {
      reply.set_route("*");
      reply.AddHeader("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
      reply.Send(200, "", "text/plain");
      return;
    }
    // With --origin the app owns every other path, "/" included.
    if (get && resource == "/" && s.config.origin.empty()) {
      reply.set_route("/");
      reply.Send(200, s.greeting);
    } else {
      s.content.Handle(ToContentRequest(request, scheme, std::move(*host), s.config, traceparent), std::move(reply));
    }
  }

 private:
  // Each connection's request as it arrives (same threading as closing_):
  // its head, and the bytes given to Pistache's parser since it began.
  struct Incoming {
    std::weak_ptr<Tcp::Peer> peer;
    HeadScanner head;
    size_t fed = 0;
  };

  // A parsed request refused before any route: one log line, counted by reason.
  void RefuseRequest(Reply& reply, int status, const char* why, const char* reason) {
    log::Warn("http", "request refused").kv("status", status).kv("why", why);
    shared_->http_metrics.Refused(reason);
    reply.set_route("refused");
    reply.Send(status, nlohmann::json{{"error", why}}.dump());
  }

  void Refuse(Http::RequestParser& parser, const std::shared_ptr<Tcp::Peer>& peer, Http::Code code,
              const std::string& why, const char* reason) {
    parser.reset();
    heads_.erase(peer.get());
    const int status = static_cast<int>(code);
    log::Warn("http", "request refused").kv("status", status).kv("why", why);
    shared_->http_metrics.Refused(reason);
    // Where this request ends is unknown: the connection ends with it.
    Http::ResponseWriter writer(Http::Version::Http11, transport(), this, peer);
    writer.headers().add<Http::Header::Connection>(Http::ConnectionControl::Close);
    closing_.insert_or_assign(peer.get(), peer);
    Reply reply(std::move(writer), "unknown", &shared_->http_metrics, &shared_->served_by);
    reply.set_route("unparsed");
    reply.Send(status, nlohmann::json{{"error", why}}.dump());
  }

  // Whether `held` points at `peer` itself (not merely at its address).
  static bool Same(const std::weak_ptr<Tcp::Peer>& held, const std::shared_ptr<Tcp::Peer>& peer) {
    return !held.owner_before(peer) && !peer.owner_before(held);
  }
  // Whether this very connection's answer said close (see closing_).
  bool Closing(const std::shared_ptr<Tcp::Peer>& peer) {
    auto it = closing_.find(peer.get());
    if (it == closing_.end()) return false;
    if (Same(it->second, peer)) return true;
    closing_.erase(it);
    return false;
  }
  // This connection's request as it arrives, fresh for a new connection.
  Incoming& Head(const std::shared_ptr<Tcp::Peer>& peer) {
    auto it = heads_.find(peer.get());
    if (it != heads_.end() && !Same(it->second.peer, peer)) {
      heads_.erase(it);
      it = heads_.end();
    }
    if (it == heads_.end()) {
      it = heads_.emplace(peer.get(), Incoming{peer, HeadScanner(shared_->config.max_header_fields), 0}).first;
    }
    return it->second;
  }

  NodeServer::Shared* shared_;
  // Connections whose answer said close (see onInput). Each transport thread
  // has its own clone of the handler and sees only its own peers: no lock.
  //
  // Both maps are keyed by the Peer's address, which a later connection may
  // be given once a Peer is freed, and keep the Peer's weak pointer: an entry
  // whose Peer is not the one asking belongs to a connection whose end
  // Pistache did not report, and is dropped (a stale closing_ entry would
  // otherwise swallow every byte of the new connection, whose client would
  // read nothing at all).
  std::unordered_map<const Tcp::Peer*, std::weak_ptr<Tcp::Peer>> closing_;
  std::unordered_map<const Tcp::Peer*, Incoming> heads_;  // see Incoming

};

// The admin listener (--admin-listen): what operators and Prometheus read,
// never reachable through the balancer's public port.
class AdminHandler : public Http::Handler {
 public:
  HTTP_PROTOTYPE(AdminHandler)

  explicit AdminHandler(NodeServer::Shared* shared) : shared_(shared) {}

  void onRequest(const Http::Request& request, Http::ResponseWriter writer) override {  // Http::Handler
    auto& s = *shared_;
    const std::string& resource = request.resource();
    const auto method = request.method();
    const bool get = method == Http::Method::Get || method == Http::Method::Head;
    const char* method_name = get ? (method == Http::Method::Get ? "GET" : "HEAD") : Http::methodString(method);
    writer.headers().add<Http::Header::Connection>(ConnectionFor(request));
    Reply reply(std::move(writer), method_name, &s.http_metrics, &s.served_by);
    if (get && resource == "/health") {
      reply.set_route("/admin/health");
      reply.AddHeader("Cache-Control", "no-store");
      nlohmann::json j = {{"status", "healthy"},
                          {"server", s.config.id},
                          {"zk", s.probes.zk_connected() ? "connected" : "disconnected"},
                          {"registered", s.probes.registered()},
                          {"draining", s.draining.load()}};
      // Reported, never judged: this stays 200 whatever Redis's state.
      if (std::string master = s.probes.redis_master ? s.probes.redis_master() : ""; !master.empty())
        j["redis_master"] = std::move(master);
      s.content.DescribeDependencies(&j);
      reply.Send(200, j.dump());
    } else if (get && resource == "/ready") {
      reply.set_route("/ready");
      reply.AddHeader("Cache-Control", "no-store");
      const bool draining = s.draining.load();
      const bool registered = s.probes.registered();
      if (!draining && registered) {
        reply.Send(200, R"({"status":"ready","server":")" + s.config.id + "\"}");
      } else {
        const char* why = draining ? "draining" : "starting";
        reply.Send(503, nlohmann::json{{"status", why}, {"server", s.config.id}}.dump());
      }
    } else if (get && resource == "/metrics") {
      reply.set_route("/metrics");
      reply.Send(200, s.registry.Render(), "text/plain; version=0.0.4; charset=utf-8");
    } else if (resource.rfind("/admin/", 0) == 0) {
      Request r;
      r.method = Http::methodString(method);
      r.path = resource;
      r.query = request.query().as_str();
      if (!r.query.empty() && r.query.front() == '?') r.query.erase(0, 1);
      for (const auto& [name, raw] : request.headers().rawList()) r.headers.emplace_back(raw.name(), raw.value());
      s.content.HandleAdmin(std::move(r), std::move(reply));
    } else {
      reply.set_route("/admin/other");
      reply.Send(404, R"({"error":"not found"})");
    }
  }

 private:
  NodeServer::Shared* shared_;
};

}  // namespace

NodeServer::NodeServer(const Config& config, metrics::Registry& registry, ContentService& content, NodeProbes probes,
                       otlp::Exporter* spans)
    : shared_(std::make_unique<Shared>(config, registry, content, std::move(probes), spans)) {}

NodeServer::~NodeServer() { Shutdown(); }

Status NodeServer::Start() {
  const auto& c = shared_->config;
  ParseRequestHeadersRaw();
  try {
    Address addr(c.listen_addr.host.empty() ? "0.0.0.0" : c.listen_addr.host, Port(c.listen_addr.port));
    endpoint_ = std::make_unique<Http::Endpoint>(addr);
    auto opts = Http::Endpoint::options()
                    .threads(c.threads)
                    .flags(Tcp::Options::ReuseAddr)
                    .maxRequestSize(c.max_request_bytes)
                    .maxResponseSize(64u << 20)
                    // Slowloris straight at a node: a client must finish its headers in 10 s.
                    .headerTimeout(std::chrono::seconds(10))
                    .bodyTimeout(std::chrono::seconds(30));
    endpoint_->init(opts);
    endpoint_->setHandler(Http::make_handler<NodeHandler>(shared_.get()));
    endpoint_->serveThreaded();
  } catch (const std::exception& e) {
    endpoint_.reset();
    return Status(ErrorCode::kUnavailable, "cannot listen on " + c.listen + ": " + e.what());
  }
  try {
    Address addr(c.admin_addr.host.empty() ? "0.0.0.0" : c.admin_addr.host, Port(c.admin_addr.port));
    admin_ = std::make_unique<Http::Endpoint>(addr);
    auto opts = Http::Endpoint::options()
                    .threads(1)
                    .flags(Tcp::Options::ReuseAddr)
                    .maxRequestSize(64 * 1024)
                    .maxResponseSize(64u << 20)
                    .headerTimeout(std::chrono::seconds(10))
                    .bodyTimeout(std::chrono::seconds(10));
    admin_->init(opts);
    admin_->setHandler(Http::make_handler<AdminHandler>(shared_.get()));
    admin_->serveThreaded();
  } catch (const std::exception& e) {
    admin_.reset();
    Shutdown();
    return Status(ErrorCode::kUnavailable, "cannot listen on " + c.admin_listen + ": " + e.what());
  }
  // The bound port, not the configured one: with --listen host:0 this line is
  // how a supervisor (or the test harness) learns the port.
  const std::string host = c.listen_addr.host.empty() ? "0.0.0.0" : c.listen_addr.host;
  log::Info("http", "listening").kv("address", host + ":" + std::to_string(port())).kv("threads", c.threads).kv("id", c.id);
  const std::string admin_host = c.admin_addr.host.empty() ? "0.0.0.0" : c.admin_addr.host;
  log::Info("admin", "listening").kv("address", admin_host + ":" + std::to_string(admin_port())).kv("id", c.id);
  return Status::Ok();
}

void NodeServer::SetDraining() { shared_->draining = true; }

void NodeServer::Shutdown() {
  if (endpoint_) {
    endpoint_->shutdown();
    endpoint_.reset();
  }
  if (admin_) {
    admin_->shutdown();
    admin_.reset();
  }
}

uint16_t NodeServer::port() const { return endpoint_ ? static_cast<uint16_t>(endpoint_->getPort()) : 0; }

uint16_t NodeServer::admin_port() const { return admin_ ? static_cast<uint16_t>(admin_->getPort()) : 0; }

}  // namespace webtier::webnode
