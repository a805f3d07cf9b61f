// Test harness: real ZooKeeper and Redis servers on free loopback ports,
// child processes that can be signalled (TERM/KILL/STOP/CONT), launchers for
// the webnode and balancer programs (on ports they bind themselves and log),
// and a small HTTP client. Every object cleans up in its destructor, so a
// failing test leaves no process behind. Setup failures throw
// std::runtime_error. Objects are for the test's own thread; the free
// functions are thread-safe. The load generator is in load.h.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace webtier::testing {

using namespace std::chrono_literals;

// A TCP port on 127.0.0.1 that was free a moment ago, chosen at random below
// the kernel's ephemeral range so no bind(0) or outgoing connection of a
// test running beside this one takes it before its server binds it.
uint16_t FreePort();

// A socket listening on 127.0.0.1 at a port the kernel picked (written to
// `*port`), for test members driven by hand. Throws when it cannot listen.
int ListenLoopback(uint16_t* port, int backlog = 64);

// A blocking TCP connection to 127.0.0.1:`port`, or -1 when refused. With
// `recv_timeout` > 0, each recv on it gives up after that long.
int ConnectLoopback(uint16_t port, std::chrono::milliseconds recv_timeout = 0ms);

// Sends all of `data` on `fd` (no SIGPIPE); false when the peer is gone.
bool SendAll(int fd, std::string_view data);

// A fresh directory under $TMPDIR (or /tmp); removed with its contents by ~TempDir.
class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "webtier");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Polls `condition` every 10 ms until it is true or `timeout` passes.
// Returns the last value of `condition`.
bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

// Absolute path of a program built by this project (webnode, balancer, ...).
// Looks in $WEBTIER_BIN_DIR, then in the build tree the tests were built in.
std::string BinaryPath(std::string_view name);

// Throws with a hint to run scripts/install-deps.sh when `program` is not installed.
void RequireInstalled(const std::string& program_path);

// A child process with its stdout+stderr in a log file. The child dies with
// the test process (PR_SET_PDEATHSIG). ~Process SIGKILLs and reaps it, and
// removes the log file when it made one itself (no Options::log_path).
class Process {
 public:
  struct Options {
    std::vector<std::string> argv;                         // argv[0] is the path to exec
    std::vector<std::pair<std::string, std::string>> env;  // added to (or replacing) the environment
    std::string log_path;                                  // empty: a temp file
    std::string cwd;                                       // empty: inherit
  };
  explicit Process(Options options);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool running();                    // false once exited (reaps it)
  void Signal(int signo);            // no-op when already exited
  // Waits for exit; the exit code, or 128+signal when killed; nullopt on timeout.
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  void Kill();                       // SIGKILL (after SIGCONT) and reap
  std::string Log() const;           // everything the child wrote so far
  const std::string& log_path() const { return log_path_; }

 private:
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  std::string log_path_;
  bool own_log_ = false;  // a temp file this Process made: removed with it
};

// Prefixes a command line, e.g. to run it inside a network namespace.
using CommandWrap = std::function<std::vector<std::string>(std::vector<std::string>)>;

// Starts ZooKeeper (Debian's zookeeper.jar on the JRE, QuorumPeerMain, small
// heap) on <dir>/zoo.cfg, logging to <dir>/zookeeper.log, run through `wrap`
// when given. Returns at once; the caller waits for it to serve.
std::unique_ptr<Process> StartZooKeeperProcess(const std::string& dir, const CommandWrap& wrap = nullptr);

// A real standalone ZooKeeper (Debian's zookeeper.jar on the JRE) with its own
// config and data dir. Restart keeps port and data (sessions survive).
class ZooKeeperServer {
 public:
  // tick_ms bounds the session timeouts the server grants: [2*tick, 20*tick].
  // bind_address "0.0.0.0" lets network namespaces reach it (default loopback only).
  explicit ZooKeeperServer(int tick_ms = 500, std::string bind_address = "127.0.0.1");
  ~ZooKeeperServer();
  void Start();  // returns once the server answers "ruok" (throws after 30 s)
  void Stop();   // SIGTERM, then SIGKILL after 5 s
  void Kill();   // SIGKILL
  bool running();
  uint16_t port() const {
    port_given_ = true;
    return port_;
  }
  std::string connect() const { return "127.0.0.1:" + std::to_string(port()); }

 private:
  void WriteConfig();

  TempDir dir_;
  uint16_t port_;
  int tick_ms_;
  std::string bind_address_;
  std::unique_ptr<Process> proc_;
  // Until the port has been handed out, a server that dies at start-up (its
  // port taken by another test between FreePort and bind) moves to another.
  mutable bool port_given_ = false;
};

// A real 3-server (or N-server) ZooKeeper ensemble on loopback, for leader
// failover. Servers are numbered 1..N.
class ZooKeeperEnsemble {
 public:
  explicit ZooKeeperEnsemble(int servers = 3, int tick_ms = 500);
  ~ZooKeeperEnsemble();
  void Start();              // all servers; returns once a quorum serves (throws after 60 s)
  void StartServer(int id);  // one server (after Kill/Stop)
  void KillServer(int id);   // SIGKILL one server
  int Leader();              // id of the current leader, 0 when none answers
  bool ServerRunning(int id);
  std::string connect() const;  // "127.0.0.1:p1,127.0.0.1:p2,..."
  uint16_t client_port(int id) const { return client_ports_[static_cast<size_t>(id - 1)]; }

 private:
  TempDir dir_;
  int tick_ms_;
  std::vector<uint16_t> client_ports_;
  std::vector<std::unique_ptr<Process>> procs_;
};

// Four-letter-word mode of the ZooKeeper server on `port`: "leader",
// "follower", "standalone", or "" when it does not answer.
std::string ZooKeeperMode(uint16_t port);

// Runs redis-cli against 127.0.0.1:`port` (a server or a Sentinel) and
// returns what it printed (stdout and stderr), trailing newlines trimmed;
// when nothing listens that is redis-cli's "Could not connect ..." line.
std::string RedisCli(uint16_t port, const std::vector<std::string>& args, const std::string& password = "");

// A real redis-server, no persistence, on a free loopback port.
// (Replicas and Sentinel around it: redis_sentinel.h.)
class RedisServer {
 public:
  explicit RedisServer(std::string password = "");
  ~RedisServer();
  void Start();  // returns once PING answers (throws after 10 s)
  void Stop();
  void Kill();
  // Sends `signo` (SIGSTOP freezes it: connections stay open and silent).
  void Signal(int signo);
  bool running();
  uint16_t port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  // Runs redis-cli against this server and returns its stdout (trimmed).
  std::string Cli(const std::vector<std::string>& args) const;

 private:
  TempDir dir_;
  uint16_t port_;
  std::string password_;
  std::unique_ptr<Process> proc_;
};

struct HttpResponse {
  int status = 0;                              // 0 when the request failed
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::string error;                           // transport error, if any
  std::string header(const std::string& name) const;
};

// One blocking HTTP/1.1 request (fresh connection). `headers` as "Name: value".
HttpResponse HttpRequest(const std::string& method, const std::string& url,
                         const std::vector<std::string>& headers = {}, const std::string& body = "",
                         std::chrono::milliseconds timeout = 5s);
inline HttpResponse HttpGet(const std::string& url, std::chrono::milliseconds timeout = 5s) {
  return HttpRequest("GET", url, {}, "", timeout);
}

// Reads a metric sample from Prometheus text: the value of the first line
// whose name and labels match, e.g. MetricValue(text, "webnode_zk_registered")
// or MetricValue(text, "x_total", {{"code","200"}}). nullopt when absent.
std::optional<double> MetricValue(const std::string& text, const std::string& name,
                                  const std::map<std::string, std::string>& labels = {});

// The port a webtier program bound, from its log: both programs print one
// logfmt line per listener once it accepts connections,
//   ... component=<component> msg=listening address=<host>:<port> ...
// (balancer: components "proxy" and "admin"; webnode: "http"), with the real
// port also when started with port 0. nullopt until that line is there.
std::optional<uint16_t> ListeningPort(const std::string& log, std::string_view component);

// Waits for that line in `process`'s log; throws (with the log) when the
// process exits first or `timeout` passes.
uint16_t WaitListeningPort(Process& process, std::string_view component, std::chrono::milliseconds timeout = 20s);

// A webnode process started with `--listen <host>:0 --admin-listen <host>:0
// --zk <zk> --id <id> --redis "" --threads 2` plus `extra_args` (later flags win, so extra_args
// may override --redis etc.). The constructor returns once the node listens
// (its port read from the log; throws when it exits first or after 20 s).
// `wrap` prefixes the command (e.g. to run it inside a network namespace;
// then `host` is an address of that namespace).
class Webnode {
 public:
  Webnode(std::string id, std::string zk_connect, std::vector<std::string> extra_args = {},
          std::string host = "127.0.0.1",
          const std::function<std::vector<std::string>(std::vector<std::string>)>& wrap = nullptr);
  // Waits until GET /health answers 200; throws after 20 s.
  void WaitHealthy();
  // Waits until the admin GET /ready answers 200 (registered); false after `timeout`.
  bool WaitReady(std::chrono::milliseconds timeout = 20s);
  std::string url(const std::string& path = "/") const;
  std::string admin_url(const std::string& path) const;  // on --admin-listen
  uint16_t port() const { return port_; }
  uint16_t admin_port() const { return admin_port_; }
  const std::string& id() const { return id_; }
  Process& process() { return *proc_; }
  std::string Metrics() const;  // admin GET /metrics body ("" on failure)

 private:
  std::string id_;
  std::string host_;
  std::unique_ptr<Process> proc_;
  uint16_t port_ = 0;
  uint16_t admin_port_ = 0;
};

// One member of the balancer's pool as its /status reports it.
struct PoolMember {
  std::string id, address, state;  // state: "healthy" or "ejected"
  long requests = 0;
  long in_flight = 0;
};

// A balancer process: `--listen H:P --admin-listen H:A --zk <zk> --zk-path
// <path> --threads 2` plus `extra_args` (later flags win), H = `host`
// (127.0.0.1 unless it runs through `wrap`, e.g. in a network namespace). The
// first start binds port 0 for both and reads the real ports from the log;
// Start() after Stop() binds the same ports again (clients keep their URL).
// The constructor starts it and waits for /health (throws after 20 s).
class Balancer {
 public:
  Balancer(std::string zk_connect, std::string zk_path = "/webtier/nodes", std::vector<std::string> extra_args = {},
           std::string host = "127.0.0.1", CommandWrap wrap = nullptr);
  ~Balancer();
  Balancer(const Balancer&) = delete;
  Balancer& operator=(const Balancer&) = delete;

  // Starts the program (it must not be running) and waits as WaitHealthy does.
  void Start();
  // Signals it and waits for its exit code (SIGKILL after `timeout`: nullopt).
  std::optional<int> Stop(int signo = SIGTERM, std::chrono::milliseconds timeout = 15s);
  // Replaces the running balancer without a stop: starts a new process on
  // the same ports with `extra_args` (in place of the ones it had; they must
  // name the same --control-socket) plus --takeover, and waits until it has
  // taken the sockets over (throws with its log when it exits first or after
  // `timeout`). Returns the old process, which is draining.
  std::unique_ptr<Process> TakeOver(std::vector<std::string> extra_args, std::chrono::milliseconds timeout = 20s);
  // Waits until admin GET /health answers 200; throws (with the log) when the
  // process exits first or after `timeout`.
  void WaitHealthy(std::chrono::milliseconds timeout = 20s);
  // Waits until /status says the pool comes from ZooKeeper over a connected
  // session; false after `timeout`.
  bool WaitSynced(std::chrono::milliseconds timeout = 20s);
  std::string url(const std::string& path = "/") const;
  std::string admin_url(const std::string& path) const;
  uint16_t port() const { return port_; }
  uint16_t admin_port() const { return admin_port_; }
  std::string Metrics() const;     // admin GET /metrics body ("" on failure)
  std::string StatusBody() const;  // admin GET /status body ("" unless 200)
  // The members /status reports, or nullopt when /status does not answer.
  std::optional<std::vector<PoolMember>> Members() const;
  int HealthyCount() const;  // members in state "healthy"; -1 when /status does not answer
  Process& process() { return *proc_; }

 private:
  std::string zk_, zk_path_;
  std::vector<std::string> extra_;
  std::string host_;
  CommandWrap wrap_;
  uint16_t port_ = 0, admin_port_ = 0;
  std::unique_ptr<Process> proc_;
};

// What headless Chromium (/usr/bin/chromium) prints of `url` once its
// scripts ran (--dump-dom); with `screenshot`, a PNG of it there instead.
std::string RenderedDom(const std::string& url, const std::string& screenshot = "");

}  // namespace webtier::testing
