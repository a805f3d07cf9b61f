// Everything the balancer can be told, with its default. Filled in main()
// from flags and BALANCER_* environment variables (flag wins) by AddFlags()
// and Finalize(); components take `const Config&`.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "webtier/balancer/membership/address_policy.h"
#include "webtier/common/membership.h"
#include "webtier/common/net.h"
#include "webtier/common/status.h"

namespace webtier::balancer {

enum class PolicyKind { kRoundRobin, kWeightedRoundRobin, kLeastRequest, kConsistentHash };

// "round_robin" | "weighted_round_robin" | "least_request" | "consistent_hash".
std::string_view PolicyName(PolicyKind kind);
std::optional<PolicyKind> ParsePolicy(std::string_view name);

// Health checks, outlier detection, slow start and locality (balancer/README.md
// "Health, outliers, slow start and zones"; flags in docs/reference.md).
struct HealthOptions {
  std::string path = "/health";       // GET per member; empty = no active checks
  int interval_ms = 1000;             // between check starts of one member (+ up to 10% jitter)
  int timeout_ms = 500;               // a check that takes longer fails
  int healthy_threshold = 2;          // passes in a row: unhealthy -> healthy
  int unhealthy_threshold = 3;        // failures in a row: healthy -> unhealthy
  int outlier_consecutive_5xx = 5;    // 5xx answers or failed connects in a row eject; 0 = off
  int outlier_base_ejection_ms = 30000;  // x ejection count, capped at 10x
  int max_ejection_percent = 50;      // of the pool, at least one member stays
  int slow_start_ms = 0;              // 10% -> full share over this time; 0 = off
  std::string zone;                   // own zone; empty = no locality
  bool checks() const { return !path.empty(); }
};

struct Config {
  net::HostPort listen{"0.0.0.0", 8000};        // proxy address
  net::HostPort admin_listen{"0.0.0.0", 9000};  // /metrics, /health, /status
  membership::ZkOptions zk;                     // --zk, --zk-path, --zk-session-timeout-ms, --zk-auth-file, --zk-admin-acl (shared)
  int zk_connect_wait_ms = 2000;                // at start: wait this long for ZK before using the state file
  PolicyKind policy = PolicyKind::kRoundRobin;  // how a member is chosen per request
  int threads = 0;                              // proxy threads; 0 = one per core
  int retries = 2;                              // extra attempts on other members
  int connect_timeout_ms = 1000;                // upstream TCP connect
  int request_timeout_ms = 30000;               // upstream: request sent -> response header (then per read)
  int try_timeout_ms = 0;                       // idempotent: no response byte by then -> next member; 0 = off
  int idle_timeout_ms = 60000;                  // idle keep-alive connections, both sides
  int header_timeout_ms = 10000;                // client: first byte -> end of request header (slowloris)
  uint32_t max_header_bytes = 16 * 1024;        // request line + headers; more -> 431
  uint32_t max_header_fields = 100;             // request header field lines; more -> 431
  uint64_t max_body_bytes = 10 * 1024 * 1024;   // request body; more -> 413
  int body_timeout_ms = 60000;                  // end of request header -> end of its body, however it trickles; 408
  std::vector<std::string> hosts;               // --host: Host values served (*.domain allowed); empty = any; else 421
  bool reuse_always = false;                    // --upstream-reuse always: a first request may take a used connection
  bool io_uring = true;                         // --io-uring on|off: a turn's member sends in one io_uring_enter
  int max_connections = 10000;                  // open client connections; more are closed at accept
  int max_idle_upstream_per_member = 1024;      // per member and proxy thread
  std::string state_file;                       // last known pool; empty = off
  // Restart and upgrade without a dropped request (control/handover.h).
  std::string control_socket;                   // --control-socket: where a successor takes the sockets; "" = off
  bool takeover = false;                        // --takeover: take them from the balancer on --control-socket
  int drain_ms = 30000;                         // --drain-ms: SIGTERM or a handover -> at most this, then exit
  HealthOptions health;                         // --health-*, --outlier-*, --slow-start-ms, --zone
  // Which member addresses may join the pool (address_policy.h); parsed by
  // Finalize() from member_allow_flag.
  AddressPolicy member_allow;
  std::string member_allow_flag;                // --member-allow ("" = any but the refused-by-default ranges)

  // Per request: the access log (access_log.h) and request ids.
  std::string access_log;                       // --access-log: file, "-" = stdout, "" = off
  std::string access_log_format = "json";       // --access-log-format json|text
  double access_log_sample = 1.0;               // --access-log-sample: share of successful requests logged
  std::string otlp_endpoint;                    // --otlp-endpoint: OTLP/HTTP collector ("" = no spans)
  bool replace_request_id = false;              // --request-id replace: a client's X-Request-Id is not trusted
  std::string request_id_flag = "keep";         // --request-id keep|replace

  // TLS termination (balancer/README.md "TLS termination"): off while
  // tls_listen_flag is empty. The certificate chain and key are PEM files,
  // loaded at start and again on SIGHUP (tls_context.h).
  std::optional<net::HostPort> tls_listen;  // HTTPS address; none = no TLS listener
  std::string tls_cert;                     // --tls-cert: certificate chain (leaf first)
  std::string tls_key;                      // --tls-key: its private key

  // HTTP/2 from clients (balancer/README.md "HTTP/2"); members get HTTP/1.1.
  bool h2 = true;            // --h2 on|off: offer h2 in ALPN on --tls-listen
  bool h2c = true;           // --h2c on|off: h2 with prior knowledge on --listen
  int h2_max_streams = 100;  // --h2-max-streams: concurrent streams per connection

  // The edge cache (balancer/README.md "Edge cache"): off while
  // edge_cache_bytes is 0.
  uint64_t edge_cache_bytes = 0;                    // --edge-cache-bytes: memory for cached answers
  uint64_t edge_cache_max_object_bytes = 1 << 20;   // --edge-cache-max-object-bytes: larger answers are not kept
  int edge_cache_window_ms = 1000;                  // --edge-cache-window-ms: back to the tier at least this often
  int edge_cache_min_uses = 2;                      // --edge-cache-min-uses: requests for a URL before its answer is kept
  std::vector<net::HostPort> edge_redis;            // --edge-redis: the tier's Redis servers (invalidations)
  std::string edge_redis_user;                      // --edge-redis-user: AUTH's user (a Redis ACL user)
  std::string edge_redis_password;                  // read from --edge-redis-password-file
  std::string edge_redis_password_file;             // AUTH for --edge-redis
  bool edge_cache() const { return edge_cache_bytes > 0; }

  // The text of the flags with typed fields above, as given (defaults: those
  // fields' defaults). Finalize() parses it into listen, admin_listen, policy.
  std::string listen_flag = listen.ToString();              // --listen
  std::string admin_listen_flag = admin_listen.ToString();  // --admin-listen
  std::string policy_flag{PolicyName(policy)};              // --policy
  std::string tls_listen_flag;                              // --tls-listen ("" = off)
  std::string hosts_flag;                                   // --host, comma-separated
  std::string upstream_reuse_flag = "safe";                 // --upstream-reuse safe|always
  std::string io_uring_flag = "on";                         // --io-uring
  std::string h2_flag = "on";                               // --h2
  std::string h2c_flag = "on";                              // --h2c
  std::string edge_redis_flag;                              // --edge-redis, comma-separated host:port
};

// Adds every flag above to `app`, with its range check (env fallbacks are
// bound by the caller).
void AddFlags(CLI::App& app, Config* config);

// The HealthOptions flags (health_config.cc); called by AddFlags.
void AddHealthFlags(CLI::App& app, HealthOptions* health);
// Checks what the ranges cannot (--health-path); called by Finalize.
Status FinalizeHealth(const HealthOptions& health);

// Validates and fills the typed fields from the *_flag text.
// kInvalidArgument's message starts with the flag: "--listen: ...".
Status Finalize(Config* config);

}  // namespace webtier::balancer
