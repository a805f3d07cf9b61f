// LoadGenerator: blocking keep-alive HTTP/1.1 clients on raw sockets.
#include "webtier/testing/load.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sstream>

namespace webtier::testing {
namespace {

using Clock = std::chrono::steady_clock;

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), ::tolower);
  return s;
}

// One keep-alive connection. Every method returns an error kind, "" on success.
class Conn {
 public:
  ~Conn() { Close(); }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    buf_.clear();
  }
  bool open() const { return fd_ >= 0; }

  std::string Connect(const std::string& host, uint16_t port, Clock::time_point deadline) {
    Close();
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd_ < 0) return "socket";
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    ::inet_pton(AF_INET, host.c_str(), &a.sin_addr);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 && errno != EINPROGRESS) {
      std::string e = errno == ECONNREFUSED ? "refused" : "connect";
      Close();
      return e;
    }
    if (!Wait(POLLOUT, deadline)) { Close(); return "connect_timeout"; }
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) { Close(); return err == ECONNREFUSED ? "refused" : "connect"; }
    return "";
  }

  std::string Send(const std::string& data, Clock::time_point deadline) {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n > 0) { off += static_cast<size_t>(n); continue; }
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        if (!Wait(POLLOUT, deadline)) return "send_timeout";
        continue;
      }
      return errno == ECONNRESET || errno == EPIPE ? "reset" : "send";
    }
    return "";
  }

  // Reads one response. Sets status, headers (lower-case names), keep_alive
  // and, for a body with a length, its first bytes.
  std::string Receive(Clock::time_point deadline, int* status, std::map<std::string, std::string>* headers,
                      bool* keep_alive, bool* got_bytes, std::string* body_start) {
    size_t header_end;
    while ((header_end = buf_.find("\r\n\r\n")) == std::string::npos) {
      std::string e = Fill(deadline);
      if (!e.empty()) return e;
      *got_bytes = true;
    }
    std::istringstream head(buf_.substr(0, header_end));
    std::string line;
    std::getline(head, line);
    if (line.rfind("HTTP/1.", 0) != 0 || line.size() < 12) return "malformed";
    *status = std::atoi(line.c_str() + 9);
    const bool http10 = line.rfind("HTTP/1.0", 0) == 0;
    while (std::getline(head, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      auto c = line.find(':');
      if (c == std::string::npos) continue;
      std::string v = line.substr(c + 1);
      v.erase(0, v.find_first_not_of(" \t"));
      (*headers)[Lower(line.substr(0, c))] = v;
    }
    buf_.erase(0, header_end + 4);
    std::string conn = Lower((*headers)["connection"]);
    *keep_alive = http10 ? conn == "keep-alive" : conn != "close";
    if (Lower((*headers)["transfer-encoding"]).find("chunked") != std::string::npos) {
      for (;;) {  // chunk-size CRLF data CRLF ... 0 CRLF CRLF
        size_t eol;
        while ((eol = buf_.find("\r\n")) == std::string::npos) {
          std::string e = Fill(deadline);
          if (!e.empty()) return e;
        }
        size_t size = std::strtoul(buf_.c_str(), nullptr, 16);
        while (buf_.size() < eol + 2 + size + 2) {
          std::string e = Fill(deadline);
          if (!e.empty()) return e;
        }
        buf_.erase(0, eol + 2 + size + 2);
        if (size == 0) return "";
      }
    }
    auto cl = headers->find("content-length");
    if (cl == headers->end()) {
      if (*status == 204 || *status == 304) return "";
      *keep_alive = false;  // body until close
      for (;;) {
        std::string e = Fill(deadline);
        if (e == "eof") return "";
        if (!e.empty()) return e;
      }
    }
    size_t len = std::strtoul(cl->second.c_str(), nullptr, 10);
    while (buf_.size() < len) {
      std::string e = Fill(deadline);
      if (!e.empty()) return e == "eof" ? "truncated" : e;
    }
    *body_start = buf_.substr(0, std::min<size_t>(len, 200));
    buf_.erase(0, len);
    return "";
  }

 private:
  bool Wait(short events, Clock::time_point deadline) {
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return false;
      pollfd p{fd_, events, 0};
      int r = ::poll(&p, 1, static_cast<int>(left));
      if (r > 0) return true;
      if (r < 0 && errno != EINTR) return false;
    }
  }

  std::string Fill(Clock::time_point deadline) {
    char tmp[16384];
    for (;;) {
      ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
      if (n > 0) { buf_.append(tmp, static_cast<size_t>(n)); return ""; }
      if (n == 0) return "eof";
      if (errno == EAGAIN || errno == EINTR) {
        if (!Wait(POLLIN, deadline)) return "timeout";
        continue;
      }
      return errno == ECONNRESET ? "reset" : "recv";
    }
  }

  int fd_ = -1;
  std::string buf_;
};

}  // namespace

std::string LoadStats::Describe() const {
  std::ostringstream o;
  o << requests << " requests, " << failed << " failed";
  for (auto& [s, n] : by_status) if (s < 200 || s >= 300) o << ", " << n << "x" << s;
  for (auto& [e, n] : errors) o << ", " << n << "x" << e;
  o << "; served_by:";
  for (auto& [id, n] : served_by) o << " " << id << "=" << n;
  for (auto& sample : failure_samples) o << "\n  failed: " << sample;
  return o.str();
}

LoadStats LoadStats::Since(const LoadStats& earlier) const {
  LoadStats d = *this;
  d.requests -= earlier.requests;
  d.ok -= earlier.ok;
  d.failed -= earlier.failed;
  for (auto& [k, v] : earlier.by_status) d.by_status[k] -= v;
  for (auto& [k, v] : earlier.errors) d.errors[k] -= v;
  for (auto& [k, v] : earlier.served_by) d.served_by[k] -= v;
  for (auto& [k, v] : earlier.x_cache) d.x_cache[k] -= v;
  return d;
}

LoadGenerator::LoadGenerator(Options options) : options_(std::move(options)) {}

LoadGenerator::~LoadGenerator() { Stop(); }

void LoadGenerator::Start() {
  running_ = true;
  for (int i = 0; i < options_.threads; ++i) threads_.emplace_back([this, i] { Worker(i); });
}

void LoadGenerator::Stop() {
  running_ = false;
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void LoadGenerator::Reset() {
  std::lock_guard<std::mutex> l(mu_);
  stats_ = LoadStats{};
  latencies_.clear();
}

std::chrono::steady_clock::time_point LoadGenerator::last_failure() const {
  std::lock_guard<std::mutex> l(mu_);
  return last_failure_;
}

LoadStats LoadGenerator::Snapshot() const {
  std::lock_guard<std::mutex> l(mu_);
  LoadStats s = stats_;
  if (!latencies_.empty()) {
    std::vector<double> v = latencies_;
    std::sort(v.begin(), v.end());
    s.p50_ms = v[v.size() / 2];
    s.p99_ms = v[std::min(v.size() - 1, v.size() * 99 / 100)];
    s.max_ms = v.back();
  }
  return s;
}

void LoadGenerator::Record(int status, const std::string& served_by, const std::string& x_cache, double ms,
                           const std::string& error, const std::string& body) {
  constexpr size_t kSamples = 10;
  std::lock_guard<std::mutex> l(mu_);
  ++stats_.requests;
  const bool ok = error.empty() && status >= 200 && status < 300;
  if (error.empty()) ++stats_.by_status[status];
  if (ok) {
    ++stats_.ok;
    ++stats_.served_by[served_by];
    if (!x_cache.empty()) ++stats_.x_cache[x_cache];
    latencies_.push_back(ms);
    return;
  }
  ++stats_.failed;
  if (!error.empty()) ++stats_.errors[error];
  last_failure_ = Clock::now();
  if (stats_.failure_samples.size() < kSamples)
    stats_.failure_samples.push_back(error.empty() ? std::to_string(status) + " " + body : error);
}

void LoadGenerator::Worker(int index) {
  const bool paced = options_.rate_per_sec > 0;
  const auto interval =
      std::chrono::microseconds(paced ? 1'000'000LL * options_.threads / options_.rate_per_sec : 0);
  auto next = Clock::now() + interval * index / options_.threads;
  const std::string connection = options_.keep_alive ? "" : "Connection: close\r\n";
  Conn conn;
  size_t path_index = static_cast<size_t>(index);
  while (running_) {
    if (paced) {
      std::this_thread::sleep_until(next);
      next += interval;
      if (Clock::now() > next + std::chrono::seconds(1)) next = Clock::now();  // don't burst after a stall
    }
    const std::string& path = options_.paths[path_index++ % options_.paths.size()];
    const auto start = Clock::now();
    const auto deadline = start + options_.timeout;
    std::string err;
    if (!conn.open()) err = conn.Connect(options_.host, options_.port, deadline);
    int status = 0;
    std::map<std::string, std::string> headers;
    bool keep_alive = true, got_bytes = false;
    std::string body;
    if (err.empty()) {
      std::string req = "GET " + path + " HTTP/1.1\r\nHost: " + options_.host + "\r\nUser-Agent: webtier-load\r\n" +
                        connection + "\r\n";
      err = conn.Send(req, deadline);
      if (err.empty()) err = conn.Receive(deadline, &status, &headers, &keep_alive, &got_bytes, &body);
      if (err == "eof") err = got_bytes ? "truncated" : "closed_before_response";
    }
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    if (!err.empty() || !keep_alive || !options_.keep_alive) conn.Close();
    Record(status, headers["x-served-by"], headers["x-cache"], ms, err, body);
  }
}

}  // namespace webtier::testing
