// The webnode's whole configuration: one struct, filled in main() from flags
// and WEBNODE_* environment variables (flag wins); components take const Config&.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "webtier/common/membership.h"
#include "webtier/common/net.h"
#include "webtier/common/serverset.h"
#include "webtier/common/status.h"

namespace webtier::webnode {

struct Config {
  std::string listen = "0.0.0.0:8080";          // HTTP address
  // The admin listener: /metrics, the detailed /health, /ready and POST
  // /admin/purge, kept off the public port (the balancer only reaches --listen).
  std::string admin_listen = "0.0.0.0:8081";
  std::string advertise;                        // host[:port] for ZooKeeper; empty = auto
  std::string id;                               // member id; empty = hostname-port
  std::string name;                             // greeting name; empty = id
  std::string zone = "local";                   // free label written into the member record
  membership::ZkOptions zk;                     // --zk, --zk-path, --zk-session-timeout-ms, --zk-auth-file, --zk-admin-acl (shared)
  std::string redis = "127.0.0.1:6379";         // Redis address; empty disables the cache
  std::string redis_password;                   // AUTH, empty = none (or read from redis_password_file)
  std::string redis_password_file;              // file holding redis_password; set = --redis-password must not be
  std::string redis_sentinel;                   // Sentinels "h:p,h:p"; set = master from Sentinel, --redis ignored
  std::string redis_sentinel_password;          // the Sentinels' AUTH, empty = none
  std::string redis_sentinel_password_file;     // file holding redis_sentinel_password (as above)
  std::string redis_master_name = "webtier";    // the master's name in Sentinel
  int threads = 0;                              // Pistache worker threads; 0 = number of cores
  std::string origin;                           // upstream base URL; empty = built-in demo app
  std::string origin_host;                      // Host sent to the origin; empty = the client's
  std::string hosts;                            // --host: Hosts served, comma list; empty = any
  size_t max_header_fields = 100;               // more request header fields: 431
  bool access_log = false;                      // --access-log: a line per request on stderr (component=access)
  std::string otlp_endpoint;                    // --otlp-endpoint: OTLP/HTTP collector ("" = no spans)
  int cache_ttl = 60;                           // seconds, when the origin sends no max-age
  int drain_ms = 2000;                          // SIGTERM: deregister, serve this long, exit
  std::string admin_token;                      // bearer token for /admin/*; empty = 403
  std::string admin_token_file;                 // file holding admin_token (as above)
  // Request size limit (Pistache's default is 4 KiB): the balancer's default
  // --max-body-bytes (10 MiB) plus room for the head, so an upload the balancer
  // passes is never refused by the node behind it.
  size_t max_request_bytes = (10u << 20) + 64 * 1024;
  // Tests only (hidden flag --test-record-version): the cache record format
  // version this node writes and reads, so one binary can play the next
  // release in a rolling-upgrade scenario. 0 = this build's own.
  int test_record_version = 0;

  // Derived by Finalize(), which also fills in id, name and threads. The
  // flags above are parsed here once; everything else reads these.
  net::HostPort listen_addr;                    // --listen
  net::HostPort admin_addr;                     // --admin-listen
  std::vector<std::string> allowed_hosts;       // --host, each normalised (request_target.h); empty = any
  std::optional<net::HostPort> advertise_addr;  // --advertise, port defaulting to listen's; nullopt = auto
  std::optional<net::HostPort> redis_addr;      // --redis, port defaulting to 6379; nullopt = fixed address off
  std::vector<net::HostPort> redis_sentinels;   // --redis-sentinel, port defaulting to 26379; empty = not used
  // The response cache is on: a Redis address or Sentinels to ask for one.
  bool cache_enabled() const { return redis_addr.has_value() || !redis_sentinels.empty(); }
};

// Adds every flag above to `app` (env fallbacks are bound by the caller).
void AddFlags(CLI::App& app, Config* config);

// Validates and fills the derived fields, and reads the secret files
// (--redis-password-file, --redis-sentinel-password-file, --admin-token-file)
// into their fields. kInvalidArgument names the flag, never a secret.
Status Finalize(Config* config);

// The member record this node registers in ZooKeeper, from a finalized
// config: the advertised address, else a specific listen host, else no host
// (the registration fills in the address it reaches ZooKeeper from).
// `bound_port`: the port the server bound (differs from --listen's for port
// 0); 0 = take --listen's. `admin_port` likewise for --admin-listen, published
// as the additional endpoint "admin".
serverset::Member ThisMember(const Config& config, uint16_t bound_port = 0, uint16_t admin_port = 0);

}  // namespace webtier::webnode
