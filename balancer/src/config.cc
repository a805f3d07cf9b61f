// The balancer's flags, their validation, and policy names as they appear on
// the command line and in /status.
#include "webtier/balancer/config.h"

#include "webtier/balancer/http/http_rules.h"
#include "webtier/common/flags.h"
#include "webtier/common/otlp.h"
#include "webtier/common/serverset.h"

namespace webtier::balancer {
namespace {

constexpr PolicyKind kPolicies[] = {PolicyKind::kRoundRobin, PolicyKind::kWeightedRoundRobin,
                                    PolicyKind::kLeastRequest, PolicyKind::kConsistentHash};

// "round_robin|weighted_round_robin|..." in kPolicies order.
std::string PolicyNames() {
  std::string names;
  for (auto k : kPolicies) names += (names.empty() ? "" : "|") + std::string(PolicyName(k));
  return names;
}

void AddTlsFlags(CLI::App& app, Config* c) {
  app.add_option("--tls-listen", c->tls_listen_flag, "HTTPS address host:port (TLS 1.2/1.3; empty = off)")
      ->capture_default_str();
  app.add_option("--tls-cert", c->tls_cert, "PEM certificate chain for --tls-listen (reloaded on SIGHUP)");
  app.add_option("--tls-key", c->tls_key, "PEM private key for --tls-listen (reloaded on SIGHUP)");
  app.add_option("--h2", c->h2_flag, "on: offer HTTP/2 (ALPN h2) on --tls-listen; off: HTTP/1.1 only")
      ->capture_default_str()
      ->check(CLI::IsMember({"on", "off"}));
  app.add_option("--h2c", c->h2c_flag,
                 "on: HTTP/2 with prior knowledge (the connection preface) on --listen; off: HTTP/1.1 only")
      ->capture_default_str()
      ->check(CLI::IsMember({"on", "off"}));
  app.add_option("--h2-max-streams", c->h2_max_streams, "concurrent streams per HTTP/2 connection (more are refused)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
}

// The TLS flags: both files are needed once --tls-listen is set (whether
// they load is checked when the TLS context is built, at start).
Status FinalizeTls(Config* c) {
  using flags::Invalid;
  c->h2 = c->h2_flag == "on";
  c->h2c = c->h2c_flag == "on";
  if (c->tls_listen_flag.empty()) {
    c->tls_listen.reset();
    return Status::Ok();
  }
  net::HostPort tls;
  if (Status s = net::ParseListenAddress(c->tls_listen_flag, &tls); !s.ok()) return Invalid("--tls-listen", s.message());
  if (c->tls_cert.empty()) return Invalid("--tls-cert", "required with --tls-listen");
  if (c->tls_key.empty()) return Invalid("--tls-key", "required with --tls-listen");
  c->tls_listen = tls;
  return Status::Ok();
}

// What a request must look like to be served, and how member connections
// are shared between clients.
void AddEdgeFlags(CLI::App& app, Config* c) {
  app.add_option("--max-header-fields", c->max_header_fields, "requests with more header field lines get 431")
      ->capture_default_str()
      ->check(CLI::Range(1u, 10000u));
  app.add_option("--body-timeout-ms", c->body_timeout_ms,
                 "a request body must be complete within this of its header, however it trickles (then 408)")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600000));
  app.add_option("--host", c->hosts_flag,
                 "comma-separated Host values served (name[:port], or *.domain for every name below it); others "
                 "get 421; empty = any")
      ->capture_default_str();
  app.add_option("--upstream-reuse", c->upstream_reuse_flag,
                 "safe: a client connection's first request always gets a member connection no other client used; "
                 "always: any idle one")
      ->capture_default_str()
      ->check(CLI::IsMember({"safe", "always"}));
  app.add_option("--io-uring", c->io_uring_flag,
                 "on: the requests sent to members in one turn of a worker's event loop go to the kernel in one "
                 "io_uring_enter (plain send()s when the kernel refuses io_uring); off: one send() each")
      ->capture_default_str()
      ->check(CLI::IsMember({"on", "off"}));
}

// The edge cache.
void AddEdgeCacheFlags(CLI::App& app, Config* c) {
  app.add_option("--edge-cache-bytes", c->edge_cache_bytes,
                 "memory for the edge cache: fresh, shareable answers served without asking a member (0 = off)")
      ->capture_default_str();
  app.add_option("--edge-cache-max-object-bytes", c->edge_cache_max_object_bytes,
                 "answers with larger bodies are not kept in the edge cache")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1}, uint64_t{64} << 20));
  app.add_option("--edge-cache-window-ms", c->edge_cache_window_ms,
                 "an edge-cached answer goes back to the tier at least this often (the bound on a missed purge)")
      ->capture_default_str()
      ->check(CLI::Range(10, 60000));
  app.add_option("--edge-cache-min-uses", c->edge_cache_min_uses,
                 "an answer is kept in the edge cache from the Nth request for its URL on (lately, as its frequency "
                 "sketch counts; 1 = the first answer): one-hit URLs stay in the tier's cache only")
      ->capture_default_str()
      ->check(CLI::Range(1, 15));
  app.add_option("--edge-redis", c->edge_redis_flag,
                 "the tier's Redis servers (host:port,...; any of one replication group): the edge cache follows "
                 "the tier's invalidations on them (empty = the window alone bounds a purge)")
      ->capture_default_str();
  app.add_option("--edge-redis-user", c->edge_redis_user,
                 "the Redis ACL user the balancer authenticates as on --edge-redis (empty = the default user); it "
                 "needs only SUBSCRIBE and PING on the channel webtier:purge");
  app.add_option("--edge-redis-password-file", c->edge_redis_password_file, "file holding the AUTH password for --edge-redis");
}

Status FinalizeEdgeCache(Config* c) {
  c->edge_redis.clear();
  std::string_view rest = c->edge_redis_flag;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string_view entry = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (entry.empty()) continue;
    net::HostPort address;
    if (Status s = net::ParseHostPort(entry, &address, 6379); !s.ok()) return flags::Invalid("--edge-redis", s.message());
    c->edge_redis.push_back(address);
  }
  c->edge_redis_password.clear();
  if (!c->edge_redis_user.empty() && c->edge_redis_password_file.empty())
    return flags::Invalid("--edge-redis-user", "needs --edge-redis-password-file (a user authenticates with a password)");
  return flags::ReadSecretFile("--edge-redis-password-file", c->edge_redis_password_file, "--edge-redis-password",
                               &c->edge_redis_password);
}

// What is written per request, and which request id goes on.
void AddRequestLogFlags(CLI::App& app, Config* c) {
  app.add_option("--access-log", c->access_log,
                 "one line per request to this file (- = stdout; empty = off); reopened on SIGUSR1")
      ->capture_default_str();
  app.add_option("--access-log-format", c->access_log_format, "json (one object per line) or text (logfmt)")
      ->capture_default_str()
      ->check(CLI::IsMember({"json", "text"}));
  app.add_option("--access-log-sample", c->access_log_sample,
                 "share of successful requests (status < 400, no flags) logged; errors always are")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--otlp-endpoint", c->otlp_endpoint,
                 "export a span per request as OTLP/HTTP JSON to this collector (http://host:port[/path]; empty = off)");
  app.add_option("--request-id", c->request_id_flag,
                 "keep: a client's X-Request-Id goes on (else the balancer makes one); replace: always a new one")
      ->capture_default_str()
      ->check(CLI::IsMember({"keep", "replace"}));
}

Status FinalizeEdge(Config* c) {
  c->hosts.clear();
  std::string_view rest = c->hosts_flag;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    std::string_view entry = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    while (!entry.empty() && entry.front() == ' ') entry.remove_prefix(1);
    while (!entry.empty() && entry.back() == ' ') entry.remove_suffix(1);
    if (entry.empty()) continue;
    const std::string_view name = entry.starts_with("*.") ? entry.substr(2) : entry;
    if (name.empty() || !IsValidHost(name)) return flags::Invalid("--host", "not a host[:port]: " + std::string(entry));
    c->hosts.emplace_back(entry);
  }
  c->reuse_always = c->upstream_reuse_flag == "always";
  c->io_uring = c->io_uring_flag == "on";
  if (!c->otlp_endpoint.empty()) {
    net::HostPort collector;
    std::string path;
    if (Status s = otlp::ParseEndpoint(c->otlp_endpoint, &collector, &path); !s.ok())
      return flags::Invalid("--otlp-endpoint", s.message());
  }
  c->replace_request_id = c->request_id_flag == "replace";
  return Status::Ok();
}

}  // namespace

std::string_view PolicyName(PolicyKind kind) {
  switch (kind) {
    case PolicyKind::kRoundRobin: return "round_robin";
    case PolicyKind::kWeightedRoundRobin: return "weighted_round_robin";
    case PolicyKind::kLeastRequest: return "least_request";
    case PolicyKind::kConsistentHash: return "consistent_hash";
  }
  return "round_robin";
}

std::optional<PolicyKind> ParsePolicy(std::string_view name) {
  for (auto k : kPolicies) {
    if (PolicyName(k) == name) return k;
  }
  return std::nullopt;
}

void AddFlags(CLI::App& app, Config* c) {
  app.set_version_flag("--version", WEBTIER_VERSION);
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // a repeated flag: the last wins
  app.add_option("--listen", c->listen_flag, "proxy address host:port")->capture_default_str();
  app.add_option("--admin-listen", c->admin_listen_flag, "admin address (/metrics, /health, /status)")
      ->capture_default_str();
  membership::AddZkFlags(app, &c->zk);
  std::vector<std::string> policies;
  for (auto k : kPolicies) policies.emplace_back(PolicyName(k));
  app.add_option("--policy", c->policy_flag, PolicyNames())->capture_default_str()->check(CLI::IsMember(policies));
  app.add_option("--threads", c->threads, "proxy threads (0 = one per core)")
      ->capture_default_str()
      ->check(CLI::Range(0, 256));
  app.add_option("--retries", c->retries, "extra attempts on other members")
      ->capture_default_str()
      ->check(CLI::Range(0, 10));
  app.add_option("--connect-timeout-ms", c->connect_timeout_ms,
                 "a connect to a member that takes longer fails (retried elsewhere)")
      ->capture_default_str()
      ->check(CLI::Range(1, 600000));
  app.add_option("--request-timeout-ms", c->request_timeout_ms, "whole exchange with a member; then 504")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600000));
  app.add_option("--try-timeout-ms", c->try_timeout_ms,
                 "idempotent requests: a member that sends no response byte within this time is ejected and the "
                 "request retried on another (counts against --retries; 0 = off)")
      ->capture_default_str()
      ->check(CLI::Range(0, 3600000));
  app.add_option("--idle-timeout-ms", c->idle_timeout_ms,
                 "idle keep-alive client connections and tunnels are closed after this")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600000));
  app.add_option("--header-timeout-ms", c->header_timeout_ms, "a request head must arrive within this (then 408)")
      ->capture_default_str()
      ->check(CLI::Range(1, 600000));
  app.add_option("--max-header-bytes", c->max_header_bytes, "larger request heads get 431")
      ->capture_default_str()
      ->check(CLI::Range(256u, 1u << 24));
  app.add_option("--max-body-bytes", c->max_body_bytes, "larger request bodies get 413")->capture_default_str();
  app.add_option("--max-connections", c->max_connections, "client connections beyond this are closed at accept")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  app.add_option("--max-idle-upstream-per-member", c->max_idle_upstream_per_member,
                 "idle keep-alive connections kept per member and proxy thread (more are closed once answered); "
                 "those idle past --idle-timeout-ms close")
      ->capture_default_str()
      ->check(CLI::Range(0, 100000));
  app.add_option("--state-file", c->state_file, "where the last known pool is saved")->capture_default_str();
  app.add_option("--member-allow", c->member_allow_flag,
                 "comma-separated CIDR ranges (IPv4/IPv6) member addresses must be in, checked after name "
                 "resolution; empty = any. Unspecified, link-local and cloud metadata addresses are refused "
                 "unless an entry within their range names them");
  app.add_option("--control-socket", c->control_socket,
                 "Unix socket (mode 0600) on which a new balancer started with --takeover takes this one's "
                 "listening sockets; empty = off")
      ->capture_default_str();
  app.add_flag("--takeover", c->takeover,
               "at start, once ready, take the listening sockets of the balancer on --control-socket (it then "
               "drains and exits); nobody there: bind as usual");
  app.add_option("--drain-ms", c->drain_ms,
                 "on SIGTERM or after a handover: requests in flight and tunnels get this long, then the process "
                 "exits")
      ->capture_default_str()
      ->check(CLI::Range(0, 3600000));
  AddHealthFlags(app, &c->health);
  AddTlsFlags(app, c);
  AddEdgeFlags(app, c);
  AddEdgeCacheFlags(app, c);
  AddRequestLogFlags(app, c);
}

Status Finalize(Config* c) {
  using flags::Invalid;
  if (Status s = net::ParseListenAddress(c->listen_flag, &c->listen); !s.ok()) return Invalid("--listen", s.message());
  if (Status s = net::ParseListenAddress(c->admin_listen_flag, &c->admin_listen); !s.ok())
    return Invalid("--admin-listen", s.message());
  std::optional<PolicyKind> policy = ParsePolicy(c->policy_flag);
  if (!policy) return Invalid("--policy", "must be one of " + PolicyNames());
  c->policy = *policy;
  if (Status s = membership::FinalizeZkOptions(&c->zk); !s.ok()) return s;
  if (Status s = AddressPolicy::Parse(c->member_allow_flag, &c->member_allow); !s.ok())
    return Invalid("--member-allow", s.message());
  if (Status s = FinalizeTls(c); !s.ok()) return s;
  if (Status s = FinalizeEdge(c); !s.ok()) return s;
  if (Status s = FinalizeEdgeCache(c); !s.ok()) return s;
  if (c->takeover && c->control_socket.empty()) return Invalid("--takeover", "needs --control-socket");
  if (c->control_socket.size() > 107) return Invalid("--control-socket", "longer than a Unix socket path may be (107)");
  return FinalizeHealth(c->health);
}

}  // namespace webtier::balancer
