// The handover protocol (see handover.h): its text, the descriptor passing
// and both ends of the control socket.
#include "webtier/balancer/control/handover.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "webtier/common/log.h"

namespace webtier::balancer::control {

namespace {

constexpr const char* kComponent = "handover";
constexpr std::string_view kMagic = "webtier-handover 1";
constexpr std::string_view kRequest = "takeover 1";
// More would not fit one SCM_RIGHTS message (the kernel's SCM_MAX_FD is 253).
constexpr size_t kMaxSockets = 200;
constexpr size_t kMaxText = 1 << 20;   // a pool of thousands of members fits
constexpr size_t kMaxLine = 256;       // the short lines after the handover
constexpr std::chrono::milliseconds kReportEvery{250};

Status Invalid(std::string message) { return Status(ErrorCode::kInvalidArgument, std::move(message)); }
Status Unavailable(std::string message) { return Status(ErrorCode::kUnavailable, std::move(message)); }
std::string Errno() { return std::strerror(errno); }

bool ValidRole(std::string_view r) { return r == kProxyRole || r == kTlsRole || r == kAdminRole || r == kControlRole; }

// A token with no whitespace or control character, as a member key must be.
bool PlainToken(std::string_view s) {
  if (s.empty() || s.size() > 512) return false;
  for (char c : s)
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return false;
  return true;
}

template <typename T>
bool ParseNumber(std::string_view s, T min, T max, T* out) {
  T v{};
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < min || v > max) return false;
  *out = v;
  return true;
}

// Splits off the first space-separated word of `*rest`.
std::string_view Word(std::string_view* rest) {
  const size_t sp = rest->find(' ');
  std::string_view w = rest->substr(0, sp);
  *rest = sp == std::string_view::npos ? std::string_view() : rest->substr(sp + 1);
  return w;
}

bool IsHex(std::string_view s) {
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

// Waits until `fd` is readable (or `wake` when >= 0); false on timeout.
bool WaitReadable(int fd, std::chrono::milliseconds timeout, int wake = -1) {
  pollfd p[2] = {{fd, POLLIN, 0}, {wake, POLLIN, 0}};
  for (;;) {
    const int n = ::poll(p, wake >= 0 ? 2 : 1, static_cast<int>(timeout.count()));
    if (n < 0 && errno == EINTR) continue;
    return n > 0 && (p[0].revents != 0);
  }
}

// Reads one '\n'-terminated line (without it) through `*buffer`; gives up
// when `wake` (>= 0) becomes readable.
Status ReadLine(int fd, std::string* buffer, std::string* line, std::chrono::milliseconds timeout, int wake = -1) {
  for (;;) {
    if (const size_t nl = buffer->find('\n'); nl != std::string::npos) {
      *line = buffer->substr(0, nl);
      buffer->erase(0, nl + 1);
      return Status::Ok();
    }
    if (buffer->size() > kMaxLine) return Invalid("a line longer than " + std::to_string(kMaxLine) + " bytes");
    if (!WaitReadable(fd, timeout, wake)) return Status(ErrorCode::kTimeout, "no answer in " + std::to_string(timeout.count()) + " ms, or stopped");
    char chunk[256];
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Unavailable(Errno());
    if (n == 0) return Unavailable("the peer closed the connection");
    buffer->append(chunk, static_cast<size_t>(n));
  }
}

bool SendText(int fd, std::string_view text) {
  while (!text.empty()) {
    const ssize_t n = ::send(fd, text.data(), text.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    text.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
};
bool Credentials(int fd, PeerCredentials* out) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return false;
  out->pid = cred.pid;
  out->uid = cred.uid;
  return true;
}
// Only our own user (or root) may hand us sockets or take ours.
bool Trusted(const PeerCredentials& c) { return c.uid == ::geteuid() || c.uid == 0; }

int SocketOption(int fd, int option) {
  int v = -1;
  socklen_t len = sizeof v;
  if (::getsockopt(fd, SOL_SOCKET, option, &v, &len) != 0) return -1;
  return v;
}

// The socket `fd` is what `line` says: a listening stream socket of the
// right family, bound to that address.
Status CheckSocket(int fd, const Listener& line) {
  const std::string what = "the " + line.role + " socket " + line.address;
  if (SocketOption(fd, SO_TYPE) != SOCK_STREAM) return Invalid(what + " is not a stream socket");
  if (SocketOption(fd, SO_ACCEPTCONN) != 1) return Invalid(what + " is not listening");
  const int domain = SocketOption(fd, SO_DOMAIN);
  const bool unix_role = line.role == kControlRole;
  if (unix_role ? domain != AF_UNIX : (domain != AF_INET && domain != AF_INET6))
    return Invalid(what + " is of the wrong address family");
  if (const std::string actual = SocketAddress(fd); actual != line.address)
    return Invalid(what + " is bound to " + (actual.empty() ? "nothing" : actual));
  return Status::Ok();
}

void CloseFds(std::vector<int>& fds) {
  for (int fd : fds) ::close(fd);
  fds.clear();
}

}  // namespace

void Handover::CloseSockets() {
  for (Listener& l : listeners) {
    if (l.fd >= 0) ::close(l.fd);
    l.fd = -1;
  }
}

std::vector<Listener> Handover::Take(std::string_view role) {
  std::vector<Listener> taken;
  for (Listener& l : listeners) {
    if (l.role != role || l.fd < 0) continue;
    taken.push_back(l);
    l.fd = -1;
  }
  return taken;
}

std::string SocketAddress(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "";
  char ip[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
    return std::string(ip) + ":" + std::to_string(ntohs(a->sin_port));
  }
  if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
    return "[" + std::string(ip) + "]:" + std::to_string(ntohs(a->sin6_port));
  }
  if (ss.ss_family == AF_UNIX) {
    const auto* a = reinterpret_cast<const sockaddr_un*>(&ss);
    const size_t max = len > offsetof(sockaddr_un, sun_path) ? len - offsetof(sockaddr_un, sun_path) : 0;
    return std::string(a->sun_path, ::strnlen(a->sun_path, max));
  }
  return "";
}

std::string EncodeHandover(const Handover& h) {
  std::string out;
  out.append(kMagic).append("\npid ").append(std::to_string(h.pid)).append("\n");
  for (const Listener& l : h.listeners) out.append("listener ").append(l.role).append(" ").append(l.address).append("\n");
  if (!h.ticket_keys.empty()) {
    static constexpr char kHex[] = "0123456789abcdef";
    out.append("tickets ");
    for (unsigned char c : h.ticket_keys) {
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
    out.append("\n");
  }
  for (const MemberState& m : h.members) {
    if (!PlainToken(m.key)) continue;
    out.append("member ").append(m.key).append(" ").append(std::to_string(m.ejected_ms)).append(" ")
        .append(std::to_string(m.ejections)).append("\n");
  }
  out.append("end\n");
  return out;
}

Status DecodeHandover(std::string_view text, Handover* out) {
  *out = Handover{};
  if (text.size() > kMaxText) return Invalid("the handover is larger than " + std::to_string(kMaxText) + " bytes");
  size_t number = 0;
  bool ended = false, has_pid = false;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    if (nl == std::string_view::npos) return Invalid("the handover ends inside a line");
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    ++number;
    const auto bad = [&](std::string_view why) {
      return Invalid("handover line " + std::to_string(number) + ": " + std::string(why));
    };
    if (ended) return bad("text after \"end\"");
    if (number == 1) {
      if (line != kMagic) return bad("not a webtier handover (or another version)");
      continue;
    }
    std::string_view rest = line;
    const std::string_view kind = Word(&rest);
    if (kind == "pid") {
      if (has_pid || !ParseNumber<pid_t>(rest, 1, 1 << 30, &out->pid)) return bad("a bad pid");
      has_pid = true;
    } else if (kind == "listener") {
      const std::string_view role = Word(&rest);
      if (!ValidRole(role)) return bad("an unknown socket role");
      if (rest.empty() || rest.size() > 108) return bad("a bad socket address");
      if (out->listeners.size() == kMaxSockets) return bad("more than " + std::to_string(kMaxSockets) + " sockets");
      out->listeners.push_back({std::string(role), std::string(rest), -1});
    } else if (kind == "tickets") {
      if (!out->ticket_keys.empty() || rest.empty() || rest.size() % 2 != 0 || rest.size() > 1024 || !IsHex(rest))
        return bad("bad ticket keys");
      for (size_t i = 0; i < rest.size(); i += 2)
        out->ticket_keys.push_back(static_cast<char>(std::strtoul(std::string(rest.substr(i, 2)).c_str(), nullptr, 16)));
    } else if (kind == "member") {
      MemberState m;
      m.key = std::string(Word(&rest));
      const std::string_view ms = Word(&rest);
      if (!PlainToken(m.key) || !ParseNumber<int64_t>(ms, 0, 24LL * 3600 * 1000, &m.ejected_ms) ||
          !ParseNumber<int>(rest, 0, 1000000, &m.ejections))
        return bad("a bad member line");
      out->members.push_back(std::move(m));
    } else if (kind == "end" && rest.empty()) {
      ended = true;
    } else {
      return bad("unknown");
    }
  }
  if (!ended) return Invalid("the handover has no \"end\" line");
  if (!has_pid) return Invalid("the handover names no pid");
  return Status::Ok();
}

bool SendWithSockets(int sock, std::string_view text, const std::vector<int>& fds) {
  if (text.empty() || fds.size() > kMaxSockets) return false;
  iovec iov{const_cast<char*>(text.data()), text.size()};
  std::vector<char> control(CMSG_SPACE(sizeof(int) * std::max<size_t>(fds.size(), 1)), 0);
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (!fds.empty()) {
    msg.msg_control = control.data();
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n;
  do n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  return n > 0 && SendText(sock, text.substr(static_cast<size_t>(n)));
}

// ---- the old process's side ------------------------------------------------

ControlServer::ControlServer(std::string path, Hooks hooks) : path_(std::move(path)), hooks_(std::move(hooks)) {}

ControlServer::~ControlServer() {
  Stop();
  if (fd_ >= 0) ::close(fd_);
  for (int& w : wake_)
    if (w >= 0) ::close(w);
}

Status ControlServer::Listen(int inherited) {
  if (inherited >= 0) {
    if (Status s = CheckSocket(inherited, {std::string(kControlRole), path_, inherited}); !s.ok()) return s;
    fd_ = inherited;
  } else {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path_.empty() || path_.size() >= sizeof addr.sun_path)
      return Invalid("--control-socket: the path must be 1 to " + std::to_string(sizeof addr.sun_path - 1) + " bytes");
    std::memcpy(addr.sun_path, path_.data(), path_.size());
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return Unavailable("--control-socket: " + Errno());
    // A file there with a live balancer behind it is a second balancer on the
    // same control socket: refuse, as a taken port is refused. A file nobody
    // answers on is what a crash left: replace it.
    const bool live = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
    const bool stale = !live && errno == ECONNREFUSED;
    ::close(fd);
    if (live)
      return Unavailable("--control-socket: a balancer already listens on " + path_ +
                         " (start with --takeover to replace it)");
    if (stale) ::unlink(path_.c_str());
    const int fd2 = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd2 < 0) return Unavailable("--control-socket: " + Errno());
    // Bound, then made private, then listening: nobody can connect while the
    // mode is still the umask's.
    if (::bind(fd2, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 || ::chmod(path_.c_str(), 0600) != 0 ||
        ::listen(fd2, 4) != 0) {
      const std::string err = Errno();
      ::close(fd2);
      return Unavailable("--control-socket: cannot listen on " + path_ + ": " + err);
    }
    fd_ = fd2;
  }
  if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) return Unavailable("pipe: " + Errno());
  log::Info(kComponent, "listening").kv("control_socket", path_);
  return Status::Ok();
}

void ControlServer::Start() {
  thread_ = std::thread([this] { Run(); });
}

void ControlServer::Stop() {
  if (stopping_.exchange(true)) return;
  if (wake_[1] >= 0) (void)!::write(wake_[1], "x", 1);
  if (thread_.joinable()) thread_.join();
  if (fd_ >= 0 && !handed_over_.load()) ::unlink(path_.c_str());
}

void ControlServer::Run() {
  while (!stopping_.load()) {
    pollfd p[2] = {{fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      log::Error(kComponent, "poll failed").kv("err", Errno());
      return;
    }
    if (p[1].revents != 0 || stopping_.load()) return;
    const int conn = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) continue;
    const bool done = Serve(conn);
    ::close(conn);
    if (done) return;
  }
}

bool ControlServer::Serve(int conn) {
  PeerCredentials peer;
  if (!Credentials(conn, &peer) || !Trusted(peer)) {
    log::Warn(kComponent, "takeover refused: another user").kv("uid", peer.uid).kv("pid", peer.pid);
    return false;
  }
  const auto abandoned = [&](const Status& s) {
    log::Warn(kComponent, "takeover abandoned; still serving").kv("successor", peer.pid).kv("err", s.message());
    return false;
  };
  // A Stop() (SIGTERM) ends a handover under way at once: this process keeps its sockets.
  std::string buffer, line;
  if (Status s = ReadLine(conn, &buffer, &line, kStepTimeout, wake_[0]); !s.ok()) return abandoned(s);
  if (line != kRequest) return abandoned(Invalid("not a takeover request"));

  const Handover offer = hooks_.offer();
  const std::string text = EncodeHandover(offer);
  std::vector<int> fds;
  for (const Listener& l : offer.listeners) fds.push_back(l.fd);
  if (fds.size() > kMaxSockets) return abandoned(Invalid("too many sockets"));
  if (!SendWithSockets(conn, text, fds)) return abandoned(Unavailable("sending the sockets: " + Errno()));

  if (Status s = ReadLine(conn, &buffer, &line, kStepTimeout, wake_[0]); !s.ok()) return abandoned(s);
  if (line != "ready") return abandoned(Invalid("the successor did not confirm"));
  // From here the successor accepts on the sockets: this process stops.
  handed_over_.store(true);
  hooks_.handed_over(peer.pid);
  log::Info(kComponent, "handed over").kv("successor", peer.pid).kv("listeners", offer.listeners.size());
  if (SendText(conn, "draining\n")) ReportDrain(conn);
  return true;
}

void ControlServer::ReportDrain(int conn) {
  while (!stopping_.load()) {
    pollfd p{wake_[0], POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(kReportEvery.count()));
    if (stopping_.load()) break;
    const DrainProgress d = hooks_.progress ? hooks_.progress() : DrainProgress{};
    if (!SendText(conn, "left " + std::to_string(d.connections) + " " + std::to_string(d.requests) + "\n")) return;
  }
  SendText(conn, "done\n");
}

// ---- the new process's side ------------------------------------------------

Status Successor::Connect(const std::string& path, std::unique_ptr<Successor>* out) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) return Invalid("--control-socket: a bad path");
  std::memcpy(addr.sun_path, path.data(), path.size());
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Unavailable(Errno());
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == ENOENT || err == ECONNREFUSED) return Status(ErrorCode::kNotFound, "no balancer listens on " + path);
    return Unavailable("cannot connect to " + path + ": " + std::strerror(err));
  }
  // SO_PEERCRED names whoever called listen() on the socket, which after a
  // handover is an earlier process: the sender of the handover itself is
  // known from the credentials the kernel attaches to what it sends.
  PeerCredentials peer;
  const int on = 1;
  if (!Credentials(fd, &peer) || !Trusted(peer) || ::setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof on) != 0) {
    ::close(fd);
    return Unavailable("the process on " + path + " belongs to another user");
  }
  out->reset(new Successor(fd, 0));
  return Status::Ok();
}

Successor::~Successor() { ::close(fd_); }

void Successor::Close() { ::shutdown(fd_, SHUT_RDWR); }

Status Successor::Receive(Handover* out) {
  *out = Handover{};
  if (!SendText(fd_, std::string(kRequest) + "\n")) return Unavailable("the predecessor closed the control socket");
  std::string text;
  std::vector<int> fds;
  const auto fail = [&](Status s) {
    CloseFds(fds);
    out->listeners.clear();
    return s;
  };
  std::vector<char> control(CMSG_SPACE(sizeof(int) * kMaxSockets) + CMSG_SPACE(sizeof(ucred)));
  std::optional<ucred> sender;  // as the kernel saw it send the first bytes
  while (!text.ends_with("\nend\n")) {
    if (text.size() > kMaxText) return fail(Invalid("the handover is larger than " + std::to_string(kMaxText) + " bytes"));
    if (!WaitReadable(fd_, kStepTimeout))
      return fail(Status(ErrorCode::kTimeout, "the predecessor sent no sockets in " + std::to_string(kStepTimeout.count()) + " ms"));
    char chunk[16384];
    iovec iov{chunk, sizeof chunk};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    const ssize_t n = ::recvmsg(fd_, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    // Whatever came with this read is ours to close from here on.
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS && !sender &&
          c->cmsg_len >= CMSG_LEN(sizeof(ucred))) {
        ucred cred;
        std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
        sender = cred;
      }
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
        fds.push_back(fd);
      }
    }
    if ((msg.msg_flags & MSG_CTRUNC) != 0) return fail(Invalid("the predecessor sent more sockets than allowed"));
    if (n < 0) return fail(Unavailable("reading the handover: " + Errno()));
    if (n == 0) return fail(Unavailable("the predecessor closed the control socket in the middle of the handover"));
    text.append(chunk, static_cast<size_t>(n));
  }
  if (!sender) return fail(Invalid("the handover came without its sender's credentials"));
  peer_pid_ = sender->pid;
  if (!Trusted({sender->pid, sender->uid})) return fail(Invalid("the handover came from another user"));
  Handover decoded;
  if (Status s = DecodeHandover(text, &decoded); !s.ok()) return fail(s);
  if (decoded.pid != peer_pid_)
    return fail(Invalid("the predecessor says it is pid " + std::to_string(decoded.pid) + " but is pid " +
                        std::to_string(peer_pid_)));
  if (fds.size() != decoded.listeners.size())
    return fail(Invalid("the predecessor named " + std::to_string(decoded.listeners.size()) + " sockets but sent " +
                        std::to_string(fds.size())));
  for (size_t i = 0; i < fds.size(); ++i) {
    if (Status s = CheckSocket(fds[i], decoded.listeners[i]); !s.ok()) return fail(s);
  }
  for (size_t i = 0; i < fds.size(); ++i) decoded.listeners[i].fd = fds[i];
  *out = std::move(decoded);
  return Status::Ok();
}

Status Successor::Confirm() {
  if (!SendText(fd_, "ready\n")) return Unavailable("the predecessor closed the control socket");
  std::string buffer, line;
  if (Status s = ReadLine(fd_, &buffer, &line, kStepTimeout); !s.ok()) return s;
  if (line != "draining") return Invalid("the predecessor answered \"" + line.substr(0, 64) + "\"");
  return Status::Ok();
}

void Successor::FollowDrain(const std::function<void(DrainProgress, bool done)>& report) {
  std::string buffer, line;
  for (;;) {
    // The reports come every 250 ms; a predecessor silent for much longer is stuck or gone.
    if (Status s = ReadLine(fd_, &buffer, &line, std::chrono::milliseconds(60000)); !s.ok()) break;
    if (line == "done") break;
    std::string_view rest = line;
    if (Word(&rest) != "left") continue;
    const std::string_view c = Word(&rest);
    DrainProgress d;
    if (ParseNumber<int>(c, 0, 1 << 30, &d.connections) && ParseNumber<int>(rest, 0, 1 << 30, &d.requests)) {
      report(d, false);
    }
  }
  report(DrainProgress{}, true);
}

bool NotifySystemd(std::string_view state) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (path == nullptr || path[0] == '\0') return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const size_t len = std::strlen(path);
  if (len >= sizeof addr.sun_path) return false;
  std::memcpy(addr.sun_path, path, len);
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';  // an abstract socket
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const socklen_t addr_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len);
  const bool ok = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&addr),
                           addr_len) == static_cast<ssize_t>(state.size());
  ::close(fd);
  return ok;
}

}  // namespace webtier::balancer::control
