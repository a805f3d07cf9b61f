// The delaying TCP relay (see delay_relay.h).
#include "delay_relay.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string_view>

#include "webtier/testing/harness.h"

namespace webtier::faults {

namespace {
void WakeEvery100ms(int fd) {
  timeval tv{0, 100 * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}
}  // namespace

DelayRelay::DelayRelay(std::chrono::milliseconds one_way) : one_way_(one_way) {
  listen_fd_ = testing::ListenLoopback(&port_, 256);
  acceptor_ = std::thread([this] { Accept(); });
}

DelayRelay::~DelayRelay() {
  stopping_ = true;
  ::shutdown(listen_fd_, SHUT_RDWR);
  acceptor_.join();
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    threads.swap(threads_);
  }
  for (auto& t : threads) t.join();
  ::close(listen_fd_);
}

void DelayRelay::Accept() {
  while (!stopping_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    const int fd = ::accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) continue;
    std::lock_guard lock(mu_);
    threads_.emplace_back([this, fd] { Relay(fd); });
  }
}

void DelayRelay::Relay(int client) {
  const uint16_t target = target_.load();
  const int upstream = target == 0 ? -1 : testing::ConnectLoopback(target);
  if (upstream >= 0) {
    WakeEvery100ms(client);
    WakeEvery100ms(upstream);
    std::thread back([this, client, upstream] { Pump(upstream, client); });
    Pump(client, upstream);
    back.join();
    ::close(upstream);
  }
  ::close(client);
}

void DelayRelay::Pump(int from, int to) {
  char buf[16384];
  while (!stopping_) {
    const ssize_t n = ::recv(from, buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
    if (n <= 0) break;
    std::this_thread::sleep_for(one_way_);
    if (!testing::SendAll(to, std::string_view(buf, static_cast<size_t>(n)))) break;
  }
  ::shutdown(to, SHUT_WR);  // the other side sees the EOF (after the data)
}

}  // namespace webtier::faults
