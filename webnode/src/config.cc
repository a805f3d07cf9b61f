// webnode flags, their validation, and the member record they describe.
#include "webtier/webnode/config.h"

#include <thread>

#include "webtier/cache/request_target.h"
#include "webtier/common/flags.h"
#include "webtier/common/otlp.h"

namespace webtier::webnode {

void AddFlags(CLI::App& app, Config* c) {
  // A flag given twice takes its last value (scripts append overrides).
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--listen", c->listen, "HTTP address host:port")->capture_default_str();
  app.add_option("--admin-listen", c->admin_listen,
                 "admin address host:port: /metrics, detailed /health, /ready, POST /admin/purge (keep it internal)")
      ->capture_default_str();
  app.add_option("--advertise", c->advertise, "host[:port] written into ZooKeeper (default: auto-detected)");
  app.add_option("--id", c->id, "member id, also sent as X-Served-By (default: hostname-port)");
  app.add_option("--name", c->name, "display name used in the greeting (default: id)");
  app.add_option("--zone", c->zone, "free label written into the member record")->capture_default_str();
  membership::AddZkFlags(app, &c->zk);
  app.add_option("--redis", c->redis, "Redis host:port; empty disables the cache")->capture_default_str();
  app.add_option("--redis-password", c->redis_password,
                 "Redis AUTH password (visible in ps: prefer --redis-password-file)");
  app.add_option("--redis-password-file", c->redis_password_file,
                 "file holding the Redis AUTH password (one trailing newline ignored); excludes --redis-password");
  app.add_option("--redis-sentinel", c->redis_sentinel,
                 "Sentinels host:port,host:port; when set the Redis master comes from Sentinel and --redis is ignored");
  app.add_option("--redis-sentinel-password", c->redis_sentinel_password,
                 "the Sentinels' AUTH password (their requirepass); --redis-password stays the Redis servers' "
                 "(visible in ps: prefer --redis-sentinel-password-file)");
  app.add_option("--redis-sentinel-password-file", c->redis_sentinel_password_file,
                 "file holding the Sentinels' AUTH password; excludes --redis-sentinel-password");
  app.add_option("--redis-master-name", c->redis_master_name, "the Redis master's name in Sentinel")
      ->capture_default_str();
  app.add_option("--threads", c->threads, "Pistache worker threads (default: number of cores)");
  app.add_option("--origin", c->origin, "upstream base URL (default: the built-in demo app)");
  app.add_option("--origin-host", c->origin_host,
                 "Host header sent to the origin (default: the one the client sent)");
  app.add_option("--host", c->hosts,
                 "Hosts served, comma list (lower case, default port dropped); another Host gets 421 (default: any)");
  app.add_option("--max-header-fields", c->max_header_fields, "most request header fields; more get 431")
      ->capture_default_str();
  app.add_option("--cache-ttl", c->cache_ttl, "heuristic freshness cap in seconds (responses with Last-Modified and no explicit freshness)")
      ->capture_default_str();
  app.add_option("--drain-ms", c->drain_ms, "on SIGTERM: time between deregistering and closing")
      ->capture_default_str();
  app.add_option("--admin-token", c->admin_token,
                 "bearer token for /admin/* (unset: admin routes answer 403; visible in ps: prefer --admin-token-file)");
  app.add_option("--admin-token-file", c->admin_token_file,
                 "file holding the bearer token for /admin/*; excludes --admin-token");
  app.add_option("--max-request-bytes", c->max_request_bytes, "largest accepted request (headers + body)")
      ->capture_default_str();
  app.add_flag("--access-log", c->access_log,
               "log one line per request on stderr (component=access: status, cache decision, request and trace id)");
  app.add_option("--otlp-endpoint", c->otlp_endpoint,
                 "export a span per request as OTLP/HTTP JSON to this collector (http://host:port[/path]; empty = off)");
  // Hidden (no group): for the rolling-upgrade fault scenario only.
  app.add_option("--test-record-version", c->test_record_version)->group("")->check(CLI::Range(0, 255));
}

namespace {
constexpr uint16_t kRedisPort = 6379;         // when --redis names only a host
constexpr uint16_t kSentinelPort = 26379;     // when a --redis-sentinel entry names only a host

// --redis-sentinel: a comma list of host[:port], none empty.
Status ParseSentinels(const std::string& list, std::vector<net::HostPort>* out) {
  out->clear();
  for (size_t start = 0; start <= list.size();) {
    size_t comma = list.find(',', start);
    if (comma == std::string::npos) comma = list.size();
    net::HostPort hp;
    if (Status s = net::ParseHostPort(list.substr(start, comma - start), &hp, kSentinelPort); !s.ok() || hp.host.empty())
      return flags::Invalid("--redis-sentinel", s.ok() ? "empty host in the list" : s.message());
    out->push_back(std::move(hp));
    start = comma + 1;
  }
  return Status::Ok();
}

// Sentinel names its masters with words: +switch-master messages are split on spaces.
bool ValidMasterName(const std::string& name) {
  return !name.empty() && name.find_first_of(" \t\r\n") == std::string::npos;
}
}  // namespace

Status Finalize(Config* c) {
  using flags::Invalid;
  if (Status s = net::ParseListenAddress(c->listen, &c->listen_addr); !s.ok()) return Invalid("--listen", s.message());
  if (Status s = net::ParseListenAddress(c->admin_listen, &c->admin_addr); !s.ok())
    return Invalid("--admin-listen", s.message());
  if (c->admin_addr.port != 0 && c->admin_addr.port == c->listen_addr.port &&
      (c->admin_addr.host == c->listen_addr.host || net::IsWildcard(c->admin_addr.host) ||
       net::IsWildcard(c->listen_addr.host)))
    return Invalid("--admin-listen", "must differ from --listen");
  if (!c->otlp_endpoint.empty()) {
    net::HostPort collector;
    std::string path;
    if (Status s = otlp::ParseEndpoint(c->otlp_endpoint, &collector, &path); !s.ok())
      return Invalid("--otlp-endpoint", s.message());
  }
  std::string bad_host;
  if (auto hosts = cache::ParseHostList(c->hosts, &bad_host)) {
    c->allowed_hosts = std::move(*hosts);
  } else {
    return Invalid("--host", "not a host[:port]: \"" + bad_host + "\"");
  }
  if (c->max_header_fields < 1 || c->max_header_fields > 10000)
    return Invalid("--max-header-fields", "must be within 1..10000");
  c->advertise_addr.reset();
  if (!c->advertise.empty()) {
    net::HostPort adv;
    if (Status s = net::ParseHostPort(c->advertise, &adv, c->listen_addr.port); !s.ok() || adv.host.empty())
      return Invalid("--advertise", s.ok() ? "empty host" : s.message());
    c->advertise_addr = std::move(adv);
  }
  if (Status s = membership::FinalizeZkOptions(&c->zk); !s.ok()) return s;
  if (Status s = flags::ReadSecretFile("--redis-password-file", c->redis_password_file, "--redis-password", &c->redis_password);
      !s.ok())
    return s;
  if (Status s = flags::ReadSecretFile("--redis-sentinel-password-file", c->redis_sentinel_password_file,
                                "--redis-sentinel-password", &c->redis_sentinel_password);
      !s.ok())
    return s;
  if (Status s = flags::ReadSecretFile("--admin-token-file", c->admin_token_file, "--admin-token", &c->admin_token); !s.ok())
    return s;
  c->redis_addr.reset();
  c->redis_sentinels.clear();
  if (!c->redis_sentinel.empty()) {
    if (Status s = ParseSentinels(c->redis_sentinel, &c->redis_sentinels); !s.ok()) return s;
    if (!ValidMasterName(c->redis_master_name)) return Invalid("--redis-master-name", "must be one word");
  } else if (!c->redis.empty()) {
    net::HostPort r;
    if (Status s = net::ParseHostPort(c->redis, &r, kRedisPort); !s.ok()) return Invalid("--redis", s.message());
    c->redis_addr = std::move(r);
  }
  if (c->threads < 0 || c->threads > 256) return Invalid("--threads", "must be within 1..256");
  if (c->threads == 0) c->threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (!c->origin.empty() && c->origin.rfind("http://", 0) != 0 && c->origin.rfind("https://", 0) != 0)
    return Invalid("--origin", "must be an http:// or https:// URL");
  if (c->cache_ttl < 0) return Invalid("--cache-ttl", "must be >= 0");
  if (c->drain_ms < 0) return Invalid("--drain-ms", "must be >= 0");
  if (c->max_request_bytes < 1024 || c->max_request_bytes > (64u << 20))
    return Invalid("--max-request-bytes", "must be within 1024..67108864");
  if (c->id.empty()) c->id = net::Hostname() + "-" + std::to_string(c->listen_addr.port);
  if (c->name.empty()) c->name = c->id;
  return Status::Ok();
}

serverset::Member ThisMember(const Config& c, uint16_t bound_port, uint16_t admin_port) {
  serverset::Member member;
  member.id = c.id;
  member.zone = c.zone;
  member.version = WEBTIER_VERSION;
  member.port = bound_port != 0 ? bound_port : c.listen_addr.port;
  member.admin_port = admin_port != 0 ? admin_port : c.admin_addr.port;
  if (c.advertise_addr.has_value()) {
    member.host = c.advertise_addr->host;
    // --advertise without a port, with --listen host:0: the port bound.
    if (c.advertise_addr->port != 0) member.port = c.advertise_addr->port;
  } else if (!net::IsWildcard(c.listen_addr.host)) {
    member.host = c.listen_addr.host;  // a specific listen address is what peers must use
  }  // else: auto-detected from the connection to ZooKeeper
  return member;
}

}  // namespace webtier::webnode
