// The misbehaving test member (see foreign_member.h).
#include "foreign_member.h"

#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>

#include "webtier/common/serverset.h"
#include "webtier/common/zk_session.h"
#include "webtier/testing/harness.h"

namespace webtier::faults {

using namespace std::chrono_literals;

ForeignMember::ForeignMember(std::string id, const std::string& zk_connect, const std::string& zk_path)
    : id_(std::move(id)), server_([this](int fd) { Serve(fd); }) {
  session_ = std::make_unique<zk::Session>(
      zk::Session::Options{.connect = zk_connect, .session_timeout_ms = 6000, .component = "test-member"});
  if (!session_->Start().ok() || !testing::WaitFor([&] { return session_->connected(); }, 20s))
    throw std::runtime_error("foreign member: no ZooKeeper session");
  if (!session_->EnsurePath(zk_path).ok()) throw std::runtime_error("foreign member: cannot create " + zk_path);
  serverset::Member m{.id = id_, .host = "127.0.0.1", .port = server_.port(), .zone = "test"};
  std::string created;
  if (!session_->Create(zk_path + "/member_", serverset::Encode(m), zk::kEphemeral | zk::kSequence, &created).ok())
    throw std::runtime_error("foreign member: cannot register");
}

ForeignMember::~ForeignMember() {
  session_->Close();  // deregistered first: the balancer stops sending
}  // then server_ stops and joins its threads

int ForeignMember::StatusFor(const std::string& path) const {
  const bool health = path == "/health";
  switch (mode_.load()) {
    case Mode::kNormal: return 200;
    case Mode::kAnswer503: return health ? 200 : 503;
    case Mode::kAnswer500: return health ? 200 : 500;
    case Mode::kHealthFails: return health ? 503 : 200;
    case Mode::kHang: return 0;
  }
  return 200;
}

void ForeignMember::Serve(int fd) {
  WakeEvery100ms(fd);  // recv wakes up to notice the stop
  std::string in;
  char buf[4096];
  while (!server_.stopping()) {
    const size_t end = in.find("\r\n\r\n");
    if (end == std::string::npos) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) break;
      if (n > 0) in.append(buf, static_cast<size_t>(n));
      continue;
    }
    // GET requests only (no body): the request line's target.
    const size_t sp1 = in.find(' '), sp2 = in.find(' ', sp1 + 1);
    const std::string path = in.substr(sp1 + 1, sp2 - sp1 - 1);
    in.erase(0, end + 4);
    if (path == "/tunnel") {
      // A WebSocket-style upgrade: 101, then every byte echoed until either side closes.
      if (!testing::SendAll(fd, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                                "X-Served-By: " + id_ + "\r\n\r\n"))
        break;
      if (!in.empty() && !testing::SendAll(fd, in)) break;
      while (!server_.stopping()) {
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) break;
        if (n > 0 && !testing::SendAll(fd, std::string_view(buf, static_cast<size_t>(n)))) break;
      }
      break;
    }
    if (path != "/health") requests_.fetch_add(1);
    int status = StatusFor(path);
    while (status == 0 && !server_.stopping()) {  // hung: hold the request
      std::this_thread::sleep_for(10ms);
      status = StatusFor(path);
    }
    if (server_.stopping()) break;
    const std::string body = std::to_string(status) + " from " + id_ + "\n";
    const std::string head = "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: text/plain\r\nX-Served-By: " +
                             id_ + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n";
    if (!testing::SendAll(fd, head + body)) break;
  }
  ::close(fd);
}

}  // namespace webtier::faults
