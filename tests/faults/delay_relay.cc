// The delaying TCP relay (see delay_relay.h).
#include "delay_relay.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string_view>

#include "webtier/testing/harness.h"

namespace webtier::faults {

DelayRelay::DelayRelay(std::chrono::milliseconds one_way)
    : one_way_(one_way), server_([this](int fd) { Relay(fd); }) {}

DelayRelay::~DelayRelay() = default;

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
  while (!server_.stopping()) {
    const ssize_t n = ::recv(from, buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
    if (n <= 0) break;
    std::this_thread::sleep_for(one_way_);
    if (!testing::SendAll(to, std::string_view(buf, static_cast<size_t>(n)))) break;
  }
  ::shutdown(to, SHUT_WR);  // the other side sees the EOF (after the data)
}

}  // namespace webtier::faults
