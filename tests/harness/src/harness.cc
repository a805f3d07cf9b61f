// Test harness implementation: real servers and child processes on loopback.
#include "webtier/testing/harness.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <nlohmann/json.hpp>

extern char** environ;

namespace webtier::testing {
namespace fs = std::filesystem;

namespace {

// 127.0.0.1:`port`.
sockaddr_in Loopback(uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  return addr;
}

// Both ways (SO_RCVTIMEO, SO_SNDTIMEO) or the receive side only.
void SetTimeouts(int fd, std::chrono::milliseconds timeout, bool send_too) {
  timeval tv{};
  tv.tv_sec = timeout.count() / 1000;
  tv.tv_usec = (timeout.count() % 1000) * 1000;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (send_too) ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

}  // namespace

int ListenLoopback(uint16_t* port, int backlog) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket: " + std::string(std::strerror(errno)));
  sockaddr_in addr = Loopback(0);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd, backlog) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const std::string err = std::strerror(errno);
    ::close(fd);
    throw std::runtime_error("listen on 127.0.0.1:0: " + err);
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

namespace {

// The first port the kernel hands out on its own (bind to 0, connect).
int EphemeralPortsStart() {
  std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 0;
  if (!(range >> low) || low <= 2048) return 32768;
  return low;
}

bool BindableOnLoopback(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr = Loopback(port);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

uint16_t FreePort() {
  // Below the kernel's ephemeral range: a port bound to 0 and closed again
  // can be handed to the next bind(0) or outgoing connect of any process
  // (another test binary running beside this one), before the server this
  // port is for has bound it. Random starting points per process keep two
  // parallel test binaries apart.
  static std::mutex mu;
  static std::mt19937 rng(std::random_device{}() ^ static_cast<unsigned>(::getpid()));
  const int high = EphemeralPortsStart();
  const int low = std::max(1024, high - 20000);
  std::lock_guard<std::mutex> lock(mu);
  std::uniform_int_distribution<int> pick(low, high - 1);
  for (int i = 0; i < 200; ++i) {
    const auto port = static_cast<uint16_t>(pick(rng));
    if (BindableOnLoopback(port)) return port;
  }
  uint16_t port = 0;  // a crowded range: let the kernel choose
  ::close(ListenLoopback(&port, 1));
  return port;
}

int ConnectLoopback(uint16_t port, std::chrono::milliseconds recv_timeout) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr = Loopback(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  if (recv_timeout.count() > 0) SetTimeouts(fd, recv_timeout, false);
  return fd;
}

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

TempDir::TempDir(std::string_view prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/" + std::string(prefix) +
                     "-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp: " + std::string(std::strerror(errno)));
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  if (std::getenv("WEBTIER_KEEP_TMP") == nullptr) fs::remove_all(path_, ec);
}

bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return condition();
    std::this_thread::sleep_for(10ms);
  }
}

std::string BinaryPath(std::string_view name) {
  std::vector<std::string> dirs;
  if (const char* d = std::getenv("WEBTIER_BIN_DIR"); d != nullptr && *d != '\0') dirs.emplace_back(d);
#ifdef WEBTIER_BUILD_BIN_DIR
  dirs.emplace_back(WEBTIER_BUILD_BIN_DIR);
#endif
  for (const auto& d : dirs) {
    std::string p = d + "/" + std::string(name);
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  throw std::runtime_error("program '" + std::string(name) + "' not built (looked in $WEBTIER_BIN_DIR and the build tree)");
}

void RequireInstalled(const std::string& program_path) {
  if (::access(program_path.c_str(), R_OK) != 0) {
    throw std::runtime_error(program_path + " is not installed: run scripts/install-deps.sh");
  }
}

// ---------------------------------------------------------------- Process

Process::Process(Options options) : log_path_(options.log_path) {
  if (options.argv.empty()) throw std::runtime_error("Process: empty argv");
  if (log_path_.empty()) {
    char tmpl[] = "/tmp/webtier-proc-XXXXXX";
    int fd = ::mkstemp(tmpl);
    if (fd >= 0) ::close(fd);
    log_path_ = tmpl;
    own_log_ = true;
  }
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv(*e);
    std::string key = kv.substr(0, kv.find('='));
    bool replaced = std::any_of(options.env.begin(), options.env.end(), [&](auto& p) { return p.first == key; });
    if (!replaced) env_strings.push_back(kv);
  }
  for (auto& [k, v] : options.env) env_strings.push_back(k + "=" + v);
  std::vector<char*> argv, envp;
  for (auto& a : options.argv) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);

  pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork: " + std::string(std::strerror(errno)));
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::setpgid(0, 0);
    int fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, STDOUT_FILENO);
      ::dup2(fd, STDERR_FILENO);
      ::close(fd);
    }
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    if (!options.cwd.empty() && ::chdir(options.cwd.c_str()) != 0) ::_exit(126);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
}

Process::~Process() {
  if (pid_ > 0 && !exit_code_) Kill();
  if (own_log_) ::unlink(log_path_.c_str());
}

bool Process::running() {
  if (exit_code_) return false;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return false;
  }
  return r == 0;
}

void Process::Signal(int signo) {
  if (running()) ::kill(pid_, signo);
}

std::optional<int> Process::Wait(std::chrono::milliseconds timeout) {
  WaitFor([&] { return !running(); }, timeout);
  return exit_code_;
}

void Process::Kill() {
  if (!running()) return;
  ::kill(pid_, SIGCONT);
  ::kill(pid_, SIGKILL);
  int status = 0;
  if (::waitpid(pid_, &status, 0) == pid_) {
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
}

std::string Process::Log() const {
  std::ifstream in(log_path_);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// ---------------------------------------------------------------- servers

namespace {

// Sends `request` to 127.0.0.1:port and returns what comes back before EOF
// (or "" on any error). Used for ZooKeeper's four-letter words.
std::string TcpExchange(uint16_t port, const std::string& request, std::chrono::milliseconds timeout) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return {};
  SetTimeouts(fd, timeout, true);
  sockaddr_in addr = Loopback(port);
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size())) {
    char buf[4096];
    ssize_t n;
    while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

void StopProcess(std::unique_ptr<Process>& proc, int signo) {
  if (!proc) return;
  proc->Signal(signo);
  if (!proc->Wait(5s)) proc->Kill();
  proc.reset();
}

}  // namespace

// Fast start-up flags: serial GC, C1 only.
std::unique_ptr<Process> StartZooKeeperProcess(const std::string& dir, const CommandWrap& wrap) {
  RequireInstalled("/usr/share/java/zookeeper.jar");
  RequireInstalled("/usr/bin/java");
  // Warnings and errors to the log (why a server failed to start), when
  // Debian's simple SLF4J binding is there; otherwise SLF4J drops them all.
  std::string classpath = "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar";
  const std::string simple_log = "/usr/share/java/slf4j-simple.jar";
  if (fs::exists(simple_log)) classpath += ":" + simple_log;
  std::vector<std::string> argv = {"/usr/bin/java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                                   "-Dzookeeper.log.dir=" + dir, "-Dzookeeper.jmx.log4j.disable=true",
                                   "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                                   "-cp", classpath,
                                   "org.apache.zookeeper.server.quorum.QuorumPeerMain", dir + "/zoo.cfg"};
  if (wrap) argv = wrap(std::move(argv));
  return std::make_unique<Process>(
      Process::Options{.argv = argv, .env = {}, .log_path = dir + "/zookeeper.log", .cwd = dir});
}

ZooKeeperServer::ZooKeeperServer(int tick_ms, std::string bind_address)
    : dir_("webtier-zk"), port_(FreePort()), tick_ms_(tick_ms), bind_address_(std::move(bind_address)) {
  fs::create_directories(dir_.path() + "/data");
  WriteConfig();
}

void ZooKeeperServer::WriteConfig() {
  std::ofstream cfg(dir_.path() + "/zoo.cfg", std::ios::trunc);
  cfg << "tickTime=" << tick_ms_ << "\n"
      << "initLimit=10\nsyncLimit=5\n"
      << "dataDir=" << dir_.path() << "/data\n"
      << "clientPort=" << port_ << "\n"
      << "clientPortAddress=" << bind_address_ << "\n"
      << "maxClientCnxns=0\n"
      << "admin.enableServer=false\n"
      << "4lw.commands.whitelist=ruok,srvr,mntr,stat,cons\n";
}

ZooKeeperServer::~ZooKeeperServer() { Kill(); }

void ZooKeeperServer::Start() {
  if (proc_ && proc_->running()) return;
  for (int attempt = 1;; ++attempt) {
    proc_ = StartZooKeeperProcess(dir_.path());
    bool ok = WaitFor([&] { return !proc_->running() || TcpExchange(port_, "ruok", 1s) == "imok"; }, 30s);
    if (ok && proc_->running()) {
      port_given_ = true;  // clients may hold it now: a restart keeps it
      return;
    }
    const std::optional<int> code = proc_->Wait(0ms);
    if (!port_given_ && code && attempt < 3) {
      // Most likely another test bound the port first: nobody knows this one yet.
      port_ = FreePort();
      WriteConfig();
      continue;
    }
    std::string log = proc_->Log();
    throw std::runtime_error("ZooKeeper did not start on port " + std::to_string(port_) + " (exit " +
                             (code ? std::to_string(*code) : std::string("none: still running")) + "): " +
                             log.substr(log.size() > 2000 ? log.size() - 2000 : 0));
  }
}

void ZooKeeperServer::Stop() { StopProcess(proc_, SIGTERM); }
void ZooKeeperServer::Kill() {
  if (proc_) proc_->Kill();
  proc_.reset();
}
bool ZooKeeperServer::running() { return proc_ && proc_->running(); }

std::string ZooKeeperMode(uint16_t port) {
  std::string r = TcpExchange(port, "srvr", 1s);
  auto pos = r.find("Mode: ");
  if (pos == std::string::npos) return "";
  auto end = r.find('\n', pos);
  return r.substr(pos + 6, end == std::string::npos ? std::string::npos : end - pos - 6);
}

ZooKeeperEnsemble::ZooKeeperEnsemble(int servers, int tick_ms) : dir_("webtier-zkq"), tick_ms_(tick_ms) {
  std::vector<std::pair<uint16_t, uint16_t>> peer_ports;
  for (int i = 0; i < servers; ++i) {
    client_ports_.push_back(FreePort());
    peer_ports.emplace_back(FreePort(), FreePort());
  }
  procs_.resize(static_cast<size_t>(servers));
  for (int id = 1; id <= servers; ++id) {
    std::string d = dir_.path() + "/s" + std::to_string(id);
    fs::create_directories(d + "/data");
    std::ofstream(d + "/data/myid") << id << "\n";
    std::ofstream cfg(d + "/zoo.cfg");
    cfg << "tickTime=" << tick_ms_ << "\ninitLimit=20\nsyncLimit=5\n"
        << "dataDir=" << d << "/data\n"
        << "clientPort=" << client_ports_[static_cast<size_t>(id - 1)] << "\n"
        << "clientPortAddress=127.0.0.1\nmaxClientCnxns=0\nadmin.enableServer=false\n"
        << "4lw.commands.whitelist=ruok,srvr,mntr,stat\n";
    for (int j = 1; j <= servers; ++j) {
      auto [peer, election] = peer_ports[static_cast<size_t>(j - 1)];
      cfg << "server." << j << "=127.0.0.1:" << peer << ":" << election << "\n";
    }
  }
}

ZooKeeperEnsemble::~ZooKeeperEnsemble() {
  for (auto& p : procs_) if (p) p->Kill();
}

void ZooKeeperEnsemble::StartServer(int id) {
  auto& p = procs_[static_cast<size_t>(id - 1)];
  if (p && p->running()) return;
  p = StartZooKeeperProcess(dir_.path() + "/s" + std::to_string(id));
}

void ZooKeeperEnsemble::Start() {
  for (int id = 1; id <= static_cast<int>(procs_.size()); ++id) StartServer(id);
  bool ok = WaitFor(
      [&] {
        int serving = 0;
        for (auto port : client_ports_) {
          std::string m = ZooKeeperMode(port);
          if (m == "leader" || m == "follower") ++serving;
        }
        return serving == static_cast<int>(client_ports_.size());
      },
      60s);
  if (!ok) throw std::runtime_error("ZooKeeper ensemble did not form a quorum within 60 s");
}

void ZooKeeperEnsemble::KillServer(int id) {
  auto& p = procs_[static_cast<size_t>(id - 1)];
  if (p) p->Kill();
  p.reset();
}

bool ZooKeeperEnsemble::ServerRunning(int id) {
  auto& p = procs_[static_cast<size_t>(id - 1)];
  return p && p->running();
}

int ZooKeeperEnsemble::Leader() {
  for (size_t i = 0; i < client_ports_.size(); ++i) {
    if (procs_[i] && ZooKeeperMode(client_ports_[i]) == "leader") return static_cast<int>(i + 1);
  }
  return 0;
}

std::string ZooKeeperEnsemble::connect() const {
  std::string s;
  for (auto p : client_ports_) {
    if (!s.empty()) s += ",";
    s += "127.0.0.1:" + std::to_string(p);
  }
  return s;
}

RedisServer::RedisServer(std::string password)
    : dir_("webtier-redis"), port_(FreePort()), password_(std::move(password)) {}

RedisServer::~RedisServer() { Kill(); }

void RedisServer::Start() {
  RequireInstalled("/usr/bin/redis-server");
  if (proc_ && proc_->running()) return;
  std::vector<std::string> argv = {"/usr/bin/redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1",
                                   "--save", "", "--appendonly", "no", "--dir", dir_.path(),
                                   "--daemonize", "no", "--protected-mode", "no",
                                   // A replica (redis_sentinel.h) syncs at once, not 5 s later.
                                   "--repl-diskless-sync-delay", "0"};
  if (!password_.empty()) {
    argv.push_back("--requirepass");
    argv.push_back(password_);
  }
  proc_ = std::make_unique<Process>(
      Process::Options{.argv = argv, .env = {}, .log_path = dir_.path() + "/redis.log", .cwd = {}});
  std::string auth = password_.empty() ? "" : "AUTH " + password_ + "\r\n";
  bool ok = WaitFor(
      [&] {
        if (!proc_->running()) return true;
        // PING then QUIT so the server closes and TcpExchange returns.
        std::string r = TcpExchange(port_, auth + "PING\r\nQUIT\r\n", 1s);
        return r.find("+PONG") != std::string::npos;
      },
      10s);
  if (!ok || !proc_->running()) throw std::runtime_error("redis-server did not start: " + proc_->Log());
}

void RedisServer::Stop() { StopProcess(proc_, SIGTERM); }
void RedisServer::Kill() {
  if (proc_) proc_->Kill();
  proc_.reset();
}
bool RedisServer::running() { return proc_ && proc_->running(); }
void RedisServer::Signal(int signo) {
  if (proc_) proc_->Signal(signo);
}

std::string RedisServer::Cli(const std::vector<std::string>& args) const { return RedisCli(port_, args, password_); }

std::string RedisCli(uint16_t port, const std::vector<std::string>& args, const std::string& password) {
  std::vector<std::string> argv = {"/usr/bin/redis-cli", "-h", "127.0.0.1", "-p", std::to_string(port)};
  if (!password.empty()) {
    argv.push_back("--no-auth-warning");
    argv.push_back("-a");
    argv.push_back(password);
  }
  argv.insert(argv.end(), args.begin(), args.end());
  TempDir tmp("webtier-cli");
  Process p(Process::Options{.argv = argv, .env = {}, .log_path = tmp.path() + "/out", .cwd = {}});
  p.Wait(10s);
  std::string out = p.Log();
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

// ---------------------------------------------------------------- HTTP

std::string HttpResponse::header(const std::string& name) const {
  std::string key = name;
  std::transform(key.begin(), key.end(), key.begin(), ::tolower);
  auto it = headers.find(key);
  return it == headers.end() ? std::string() : it->second;
}

namespace {

size_t CollectBody(char* ptr, size_t size, size_t n, void* ud) {
  static_cast<std::string*>(ud)->append(ptr, size * n);
  return size * n;
}

size_t CollectHeader(char* ptr, size_t size, size_t n, void* ud) {
  auto* r = static_cast<HttpResponse*>(ud);
  std::string line(ptr, size * n);
  if (line.rfind("HTTP/", 0) == 0) {
    r->headers.clear();  // a new response (e.g. after 100-continue)
    return size * n;
  }
  auto colon = line.find(':');
  if (colon != std::string::npos) {
    std::string key = line.substr(0, colon);
    std::transform(key.begin(), key.end(), key.begin(), ::tolower);
    std::string value = line.substr(colon + 1);
    auto b = value.find_first_not_of(" \t");
    auto e = value.find_last_not_of(" \t\r\n");
    r->headers[key] = b == std::string::npos ? "" : value.substr(b, e - b + 1);
  }
  return size * n;
}

struct CurlGlobal {
  CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
};

}  // namespace

HttpResponse HttpRequest(const std::string& method, const std::string& url, const std::vector<std::string>& headers,
                         const std::string& body, std::chrono::milliseconds timeout) {
  static CurlGlobal global;
  HttpResponse r;
  CURL* c = curl_easy_init();
  if (c == nullptr) {
    r.error = "curl_easy_init failed";
    return r;
  }
  curl_slist* hl = nullptr;
  for (const auto& h : headers) hl = curl_slist_append(hl, h.c_str());
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &CollectBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &CollectHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
  if (method == "HEAD") {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (method != "GET") {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK) {
    r.error = curl_easy_strerror(rc);
  } else {
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    r.status = static_cast<int>(code);
  }
  curl_slist_free_all(hl);
  curl_easy_cleanup(c);
  return r;
}

std::optional<double> MetricValue(const std::string& text, const std::string& name,
                                  const std::map<std::string, std::string>& labels) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (line.compare(0, name.size(), name) != 0) continue;
    char next = line.size() > name.size() ? line[name.size()] : '\0';
    if (next != '{' && next != ' ') continue;
    bool match = true;
    for (const auto& [k, v] : labels) {
      if (line.find(k + "=\"" + v + "\"") == std::string::npos) { match = false; break; }
    }
    if (!match) continue;
    auto sp = line.rfind(' ');
    try {
      return std::stod(line.substr(sp + 1));
    } catch (...) {
      return std::nullopt;
    }
  }
  return std::nullopt;
}


// ---------------------------------------------------------------- listening ports

std::optional<uint16_t> ListeningPort(const std::string& log, std::string_view component) {
  const std::string marker = "component=" + std::string(component) + " msg=listening ";
  std::istringstream in(log);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(marker) == std::string::npos) continue;
    const auto at = line.find(" address=");
    if (at == std::string::npos) continue;
    const auto end = line.find(' ', at + 1);
    const std::string address = line.substr(at + 9, end == std::string::npos ? std::string::npos : end - at - 9);
    const auto colon = address.rfind(':');
    if (colon == std::string::npos) continue;
    try {
      const int port = std::stoi(address.substr(colon + 1));
      if (port > 0 && port < 65536) return static_cast<uint16_t>(port);
    } catch (...) {
    }
  }
  return std::nullopt;
}

uint16_t WaitListeningPort(Process& process, std::string_view component, std::chrono::milliseconds timeout) {
  std::optional<uint16_t> port;
  WaitFor([&] { return (port = ListeningPort(process.Log(), component)).has_value() || !process.running(); }, timeout);
  if (!port) port = ListeningPort(process.Log(), component);  // it may have logged, then exited
  if (!port) {
    throw std::runtime_error("no '" + std::string(component) + " listening' line from pid " +
                             std::to_string(process.pid()) + ": " + process.Log());
  }
  return *port;
}

// ---------------------------------------------------------------- Webnode

Webnode::Webnode(std::string id, std::string zk_connect, std::vector<std::string> extra_args, std::string host,
                 const std::function<std::vector<std::string>(std::vector<std::string>)>& wrap)
    : id_(std::move(id)), host_(std::move(host)) {
  std::vector<std::string> argv = {BinaryPath("webnode"), "--listen", host_ + ":0", "--admin-listen", host_ + ":0",
                                   "--zk", zk_connect, "--id", id_, "--redis", "", "--threads", "2"};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  if (wrap) argv = wrap(std::move(argv));
  proc_ = std::make_unique<Process>(Process::Options{.argv = argv, .env = {}, .log_path = {}, .cwd = {}});
  port_ = WaitListeningPort(*proc_, "http");
  admin_port_ = WaitListeningPort(*proc_, "admin");
}

void Webnode::WaitHealthy() {
  bool ok = WaitFor([&] { return !proc_->running() || HttpGet(url("/health"), 1s).status == 200; }, 20s);
  if (!ok || !proc_->running()) throw std::runtime_error("webnode " + id_ + " did not become healthy: " + proc_->Log());
}

bool Webnode::WaitReady(std::chrono::milliseconds timeout) {
  return WaitFor([&] { return HttpGet(admin_url("/ready"), 1s).status == 200; }, timeout);
}

std::string Webnode::url(const std::string& path) const {
  return "http://" + host_ + ":" + std::to_string(port_) + path;
}

std::string Webnode::admin_url(const std::string& path) const {
  return "http://" + host_ + ":" + std::to_string(admin_port_) + path;
}

std::string Webnode::Metrics() const { return HttpGet(admin_url("/metrics"), 2s).body; }

// ---------------------------------------------------------------- Balancer

Balancer::Balancer(std::string zk_connect, std::string zk_path, std::vector<std::string> extra_args, std::string host,
                   CommandWrap wrap)
    : zk_(std::move(zk_connect)),
      zk_path_(std::move(zk_path)),
      extra_(std::move(extra_args)),
      host_(std::move(host)),
      wrap_(std::move(wrap)) {
  Start();
}

Balancer::~Balancer() = default;  // ~Process kills it

void Balancer::Start() {
  if (proc_ && proc_->running()) throw std::runtime_error("Balancer::Start: already running");
  std::vector<std::string> argv = {BinaryPath("balancer"), "--listen", host_ + ":" + std::to_string(port_),
                                   "--admin-listen", host_ + ":" + std::to_string(admin_port_), "--zk", zk_,
                                   "--zk-path", zk_path_, "--threads", "2"};
  argv.insert(argv.end(), extra_.begin(), extra_.end());
  if (wrap_) argv = wrap_(std::move(argv));
  proc_ = std::make_unique<Process>(Process::Options{.argv = argv, .env = {}, .log_path = {}, .cwd = {}});
  // Both listen once the pool is loaded (or ZooKeeper's start-up wait ran out).
  admin_port_ = WaitListeningPort(*proc_, "admin");
  port_ = WaitListeningPort(*proc_, "proxy");
  WaitHealthy();
}

std::unique_ptr<Process> Balancer::TakeOver(std::vector<std::string> extra_args, std::chrono::milliseconds timeout) {
  extra_ = std::move(extra_args);
  std::vector<std::string> argv = {BinaryPath("balancer"), "--listen", host_ + ":" + std::to_string(port_),
                                   "--admin-listen", host_ + ":" + std::to_string(admin_port_), "--zk", zk_,
                                   "--zk-path", zk_path_, "--threads", "2"};
  argv.insert(argv.end(), extra_.begin(), extra_.end());
  argv.push_back("--takeover");
  if (wrap_) argv = wrap_(std::move(argv));
  auto next = std::make_unique<Process>(Process::Options{.argv = argv, .env = {}, .log_path = {}, .cwd = {}});
  const bool took = WaitFor([&] { return !next->running() || next->Log().find("msg=\"took over\"") != std::string::npos; },
                            timeout);
  if (!took || !next->running()) throw std::runtime_error("balancer did not take over: " + next->Log());
  std::swap(proc_, next);
  return next;
}

std::optional<int> Balancer::Stop(int signo, std::chrono::milliseconds timeout) {
  if (!proc_) return std::nullopt;
  proc_->Signal(signo);
  auto rc = proc_->Wait(timeout);
  if (!rc) proc_->Kill();
  return rc;
}

void Balancer::WaitHealthy(std::chrono::milliseconds timeout) {
  bool ok = WaitFor([&] { return !proc_->running() || HttpGet(admin_url("/health"), 1s).status == 200; }, timeout);
  if (!ok || !proc_->running()) throw std::runtime_error("balancer did not become healthy: " + proc_->Log());
}

bool Balancer::WaitSynced(std::chrono::milliseconds timeout) {
  return WaitFor(
      [&] {
        auto j = nlohmann::json::parse(StatusBody(), nullptr, false);
        return !j.is_discarded() && j.value("source", "") == "zookeeper" &&
               j["zookeeper"].value("state", "") == "connected";
      },
      timeout);
}

std::string Balancer::url(const std::string& path) const {
  return "http://" + host_ + ":" + std::to_string(port_) + path;
}

std::string Balancer::admin_url(const std::string& path) const {
  return "http://" + host_ + ":" + std::to_string(admin_port_) + path;
}

std::string Balancer::Metrics() const { return HttpGet(admin_url("/metrics"), 2s).body; }

std::string Balancer::StatusBody() const {
  auto r = HttpGet(admin_url("/status"), 2s);
  return r.status == 200 ? r.body : std::string();
}

std::optional<std::vector<PoolMember>> Balancer::Members() const {
  auto j = nlohmann::json::parse(StatusBody(), nullptr, false);
  if (j.is_discarded() || !j.contains("members")) return std::nullopt;
  std::vector<PoolMember> out;
  for (const auto& m : j["members"]) {
    out.push_back({.id = m.value("id", ""),
                   .address = m.value("address", ""),
                   .state = m.value("state", ""),
                   .requests = m.value("requests", 0L),
                   .in_flight = m.value("in_flight", 0L)});
  }
  return out;
}

int Balancer::HealthyCount() const {
  auto m = Members();
  if (!m) return -1;
  return static_cast<int>(std::count_if(m->begin(), m->end(), [](const PoolMember& x) { return x.state == "healthy"; }));
}

// What headless Chromium prints of `url` once its scripts ran (--dump-dom).
std::string RenderedDom(const std::string& url, const std::string& screenshot) {
  std::string cmd = "/usr/bin/chromium --headless --no-sandbox --disable-gpu --hide-scrollbars"
                    " --virtual-time-budget=5000 --window-size=1900,420";
  if (!screenshot.empty()) cmd += " --screenshot='" + screenshot + "'";
  else cmd += " --dump-dom";
  cmd += " '" + url + "' 2>/dev/null";
  std::string out;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    char buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    ::pclose(p);
  }
  return out;
}

}  // namespace webtier::testing
