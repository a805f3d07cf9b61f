// Test harness: Redis primary + replicas + Sentinels as real processes.
#include "webtier/testing/redis_sentinel.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace webtier::testing {
namespace {

// The value after `key` in redis-cli's one-item-per-line output of a flat
// key/value reply (SENTINEL master), or "" when absent.
std::string FlatValue(const std::string& out, const std::string& key) {
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    if (line == key) {
      std::string value;
      std::getline(in, value);
      return value;
    }
  }
  return "";
}

// "field:value" lines of INFO: the values of every line starting with `prefix`.
std::vector<std::string> InfoValues(const std::string& info, const std::string& prefix) {
  std::vector<std::string> values;
  std::istringstream in(info);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.rfind(prefix, 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) values.push_back(line.substr(colon + 1));
    }
  }
  return values;
}

long long ToNumber(const std::string& s) {
  try {
    return std::stoll(s);
  } catch (const std::exception&) {
    return -1;
  }
}

}  // namespace

RedisSentinels::RedisSentinels() : RedisSentinels(Options{}) {}

RedisSentinels::RedisSentinels(Options options) : options_(std::move(options)), dir_("webtier-sentinel") {
  for (int i = 0; i <= options_.replicas; ++i) servers_.push_back(std::make_unique<RedisServer>(options_.server_password));
  for (int i = 0; i < options_.sentinels; ++i) sentinel_ports_.push_back(FreePort());
  sentinels_.resize(sentinel_ports_.size());
}

RedisSentinels::~RedisSentinels() {
  for (auto& s : sentinels_) {
    if (s) s->Kill();
  }
}

void RedisSentinels::Start() {
  StartServers();
  StartSentinels();
}

void RedisSentinels::StartServers() {
  for (auto& s : servers_) {
    s->Start();
    // Every server may become a replica in a failover: each authenticates to its master.
    if (!options_.server_password.empty()) s->Cli({"CONFIG", "SET", "masterauth", options_.server_password});
  }
  const std::string primary_port = std::to_string(servers_[0]->port());
  for (size_t i = 1; i < servers_.size(); ++i) servers_[i]->Cli({"REPLICAOF", "127.0.0.1", primary_port});
  bool linked = WaitFor(
      [&] {
        for (size_t i = 1; i < servers_.size(); ++i) {
          auto link = InfoValues(servers_[i]->Cli({"INFO", "replication"}), "master_link_status");
          if (link.empty() || link[0] != "up") return false;
        }
        return true;
      },
      20s);
  if (!linked) throw std::runtime_error("redis replicas did not link to the primary within 20 s");
}

void RedisSentinels::StartSentinel(int i) {
  RequireInstalled("/usr/bin/redis-sentinel");
  const std::string dir = dir_.path() + "/s" + std::to_string(i);
  std::filesystem::create_directories(dir);
  const std::string conf = dir + "/sentinel.conf";
  const std::string& name = options_.master_name;
  {
    std::ofstream cfg(conf);
    cfg << "port " << sentinel_ports_[static_cast<size_t>(i)] << "\n"
        << "bind 127.0.0.1\nprotected-mode no\ndaemonize no\nlogfile \"\"\n"
        << "dir " << dir << "\n"
        << "sentinel monitor " << name << " 127.0.0.1 " << servers_[0]->port() << " " << options_.sentinels / 2 + 1
        << "\n"
        << "sentinel down-after-milliseconds " << name << " " << options_.down_after.count() << "\n"
        << "sentinel failover-timeout " << name << " " << options_.failover_timeout.count() << "\n"
        << "sentinel parallel-syncs " << name << " 1\n";
    if (!options_.server_password.empty()) cfg << "sentinel auth-pass " << name << " " << options_.server_password << "\n";
    if (!options_.password.empty()) {
      // Clients AUTH with it; the Sentinels use it with each other too.
      cfg << "requirepass " << options_.password << "\n"
          << "sentinel sentinel-pass " << options_.password << "\n";
    }
  }
  sentinels_[static_cast<size_t>(i)] = std::make_unique<Process>(Process::Options{
      .argv = {"/usr/bin/redis-sentinel", conf}, .env = {}, .log_path = dir + "/sentinel.log", .cwd = dir});
}

void RedisSentinels::StartSentinels() {
  for (int i = 0; i < options_.sentinels; ++i) StartSentinel(i);
  const std::string replicas = std::to_string(options_.replicas);
  const std::string others = std::to_string(options_.sentinels - 1);
  std::string waiting;  // which sentinel is not there yet, and what it sees
  bool ready = WaitFor(
      [&] {
        for (int i = 0; i < options_.sentinels; ++i) {
          if (!sentinels_[static_cast<size_t>(i)]->running()) {
            // Its port, free when chosen, was taken before it bound (another
            // test's process): a new port, a new start. Before any client
            // was given the list (sentinel_list()).
            waiting = "sentinel " + std::to_string(i) + " exited: " + sentinels_[static_cast<size_t>(i)]->Log();
            sentinel_ports_[static_cast<size_t>(i)] = FreePort();
            StartSentinel(i);
            return false;
          }
          std::string m = SentinelCli(i, {"SENTINEL", "master", options_.master_name});
          if (FlatValue(m, "num-slaves") != replicas || FlatValue(m, "num-other-sentinels") != others) {
            waiting = "sentinel " + std::to_string(i) + " sees num-slaves=" + FlatValue(m, "num-slaves") +
                      " num-other-sentinels=" + FlatValue(m, "num-other-sentinels");
            return false;
          }
        }
        return true;
      },
      30s);
  if (!ready) {
    std::string logs;
    for (int i = 0; i < options_.sentinels; ++i) {
      logs += "\n--- sentinel " + std::to_string(i) + ":\n" + sentinels_[static_cast<size_t>(i)]->Log();
    }
    throw std::runtime_error("sentinels did not discover the master, its replicas and each other within 30 s (" +
                             waiting + "):" + logs);
  }
}

void RedisSentinels::KillSentinel(int i) {
  auto& s = sentinels_[static_cast<size_t>(i)];
  if (s) s->Kill();
  s.reset();
}

std::string RedisSentinels::sentinel_list() const {
  std::string list;
  for (uint16_t p : sentinel_ports_) list += (list.empty() ? "" : ",") + std::string("127.0.0.1:") + std::to_string(p);
  return list;
}

std::string RedisSentinels::SentinelCli(int i, const std::vector<std::string>& args) const {
  return RedisCli(sentinel_ports_[static_cast<size_t>(i)], args, options_.password);
}

uint16_t RedisSentinels::MasterPort(int i) const {
  std::istringstream out(SentinelCli(i, {"SENTINEL", "get-master-addr-by-name", options_.master_name}));
  std::string host, port;
  if (!std::getline(out, host) || !std::getline(out, port)) return 0;
  long long p = ToNumber(port);
  return p > 0 && p < 65536 ? static_cast<uint16_t>(p) : 0;
}

int RedisSentinels::MasterIndex(int i) const {
  const uint16_t port = MasterPort(i);
  for (size_t s = 0; s < servers_.size(); ++s) {
    if (port != 0 && servers_[s]->port() == port) return static_cast<int>(s);
  }
  return -1;
}

std::string RedisSentinels::Role(int server_index) {
  RedisServer& s = server(server_index);
  if (!s.running()) return "";
  std::string out = s.Cli({"ROLE"});
  std::string first = out.substr(0, out.find('\n'));
  return first == "master" || first == "slave" ? first : "";
}

bool RedisSentinels::WaitReplicated(std::chrono::milliseconds timeout) {
  int master = -1;
  for (int i = 0; i < server_count() && master < 0; ++i) {
    if (Role(i) == "master") master = i;
  }
  if (master < 0) return false;
  auto offset = InfoValues(server(master).Cli({"INFO", "replication"}), "master_repl_offset");
  if (offset.empty()) return false;
  const long long target = ToNumber(offset[0]);
  return WaitFor(
      [&] {
        // slaveN:ip=127.0.0.1,port=P,state=online,offset=N,lag=0
        auto replicas = InfoValues(server(master).Cli({"INFO", "replication"}), "slave");
        int listed = 0, acked = 0;
        for (const auto& r : replicas) {
          auto at = r.find(",offset=");
          if (r.rfind("ip=", 0) != 0 || at == std::string::npos) continue;  // not a slaveN line
          ++listed;
          if (ToNumber(r.substr(at + 8, r.find(',', at + 1) - at - 8)) >= target) ++acked;
        }
        return listed > 0 && acked == listed;
      },
      timeout);
}

}  // namespace webtier::testing
