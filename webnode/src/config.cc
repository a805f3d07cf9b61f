// webnode flags and their validation.
#include "webtier/webnode/config.h"

#include <thread>

namespace webtier::webnode {

void AddFlags(CLI::App& app, Config* c) {
  // A flag given twice takes its last value (scripts append overrides).
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--listen", c->listen, "HTTP address host:port")->capture_default_str();
  app.add_option("--advertise", c->advertise, "host[:port] written into ZooKeeper (default: auto-detected)");
  app.add_option("--id", c->id, "member id, also sent as X-Served-By (default: hostname-port)");
  app.add_option("--name", c->name, "display name used in the greeting (default: id)");
  app.add_option("--zone", c->zone, "free label written into the member record")->capture_default_str();
  app.add_option("--zk", c->zk, "ZooKeeper connect string (comma-separated host:port)")->capture_default_str();
  app.add_option("--zk-path", c->zk_path, "membership path")->capture_default_str();
  app.add_option("--zk-session-timeout-ms", c->zk_session_timeout_ms, "ZooKeeper session timeout")
      ->capture_default_str();
  app.add_option("--redis", c->redis, "Redis host:port; empty disables the cache")->capture_default_str();
  app.add_option("--redis-password", c->redis_password, "Redis AUTH password");
  app.add_option("--threads", c->threads, "Pistache worker threads (default: number of cores)");
  app.add_option("--origin", c->origin, "upstream base URL (default: the built-in demo app)");
  app.add_option("--cache-ttl", c->cache_ttl, "cache TTL in seconds when the origin sends no max-age")
      ->capture_default_str();
  app.add_option("--drain-ms", c->drain_ms, "on SIGTERM: time between deregistering and closing")
      ->capture_default_str();
  app.add_option("--admin-token", c->admin_token, "bearer token for /admin/* (unset: admin routes answer 403)");
  app.add_option("--max-request-bytes", c->max_request_bytes, "largest accepted request (headers + body)")
      ->capture_default_str();
}

namespace {
Status Bad(const std::string& flag, const std::string& why) {
  return Status(ErrorCode::kInvalidArgument, flag + ": " + why);
}
}  // namespace

Status Finalize(Config* c) {
  if (Status s = net::ParseListenAddress(c->listen, &c->listen_addr); !s.ok()) return Bad("--listen", s.message());
  if (!c->advertise.empty()) {
    net::HostPort adv;
    if (Status s = net::ParseHostPort(c->advertise, &adv, c->listen_addr.port); !s.ok() || adv.host.empty())
      return Bad("--advertise", s.ok() ? "empty host" : s.message());
  }
  if (c->zk.empty()) return Bad("--zk", "must not be empty");
  if (c->zk_path.size() < 2 || c->zk_path.front() != '/' || c->zk_path.back() == '/')
    return Bad("--zk-path", "must be an absolute znode path like /webtier/nodes");
  if (c->zk_session_timeout_ms < 1000 || c->zk_session_timeout_ms > 600000)
    return Bad("--zk-session-timeout-ms", "must be within 1000..600000");
  if (!c->redis.empty()) {
    net::HostPort r;
    if (Status s = net::ParseHostPort(c->redis, &r, 6379); !s.ok()) return Bad("--redis", s.message());
  }
  if (c->threads < 0 || c->threads > 256) return Bad("--threads", "must be within 1..256");
  if (c->threads == 0) c->threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (!c->origin.empty() && c->origin.rfind("http://", 0) != 0 && c->origin.rfind("https://", 0) != 0)
    return Bad("--origin", "must be an http:// or https:// URL");
  if (c->cache_ttl < 0) return Bad("--cache-ttl", "must be >= 0");
  if (c->drain_ms < 0) return Bad("--drain-ms", "must be >= 0");
  if (c->max_request_bytes < 1024 || c->max_request_bytes > (64u << 20))
    return Bad("--max-request-bytes", "must be within 1024..67108864");
  if (c->id.empty()) c->id = net::Hostname() + "-" + std::to_string(c->listen_addr.port);
  if (c->name.empty()) c->name = c->id;
  return Status::Ok();
}

}  // namespace webtier::webnode
