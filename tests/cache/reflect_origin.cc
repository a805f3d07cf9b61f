// ReflectOrigin and Victim on plain sockets.
#include "reflect_origin.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>

#include "webtier/testing/harness.h"

namespace webtier::cache::testing {
namespace {

// Waits up to 100 ms for a connection; -1 when none (or stopping).
int AcceptSome(int listen_fd) {
  pollfd p{listen_fd, POLLIN, 0};
  if (::poll(&p, 1, 100) <= 0) return -1;
  return ::accept(listen_fd, nullptr, nullptr);
}

}  // namespace

ReflectOrigin::ReflectOrigin() {
  listen_fd_ = webtier::testing::ListenLoopback(&port_);
  acceptor_ = std::thread([this] {
    while (!stop_.load()) {
      int fd = AcceptSome(listen_fd_);
      if (fd < 0) continue;
      std::lock_guard<std::mutex> lock(mu_);
      threads_.emplace_back([this, fd] { Serve(fd); });
    }
  });
}

ReflectOrigin::~ReflectOrigin() {
  stop_ = true;
  acceptor_.join();
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    threads.swap(threads_);
  }
  for (auto& t : threads) t.join();
  ::close(listen_fd_);
}

std::vector<std::string> ReflectOrigin::request_lines() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lines_;
}

void ReflectOrigin::Serve(int fd) {
  timeval tv{0, 200 * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string in;
  char buf[4096];
  while (!stop_.load()) {  // one request per connection at a time, keep-alive
    size_t end;
    while ((end = in.find("\r\n\r\n")) == std::string::npos) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        ::close(fd);
        return;
      }
      if (stop_.load()) {
        ::close(fd);
        return;
      }
      if (n > 0) in.append(buf, static_cast<size_t>(n));
    }
    std::string head = in.substr(0, end);
    in.erase(0, end + 4);
    size_t length = 0;
    std::string lower = head;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (size_t cl = lower.find("\r\ncontent-length:"); cl != std::string::npos) {
      length = std::strtoul(lower.c_str() + cl + 17, nullptr, 10);
    }
    while (in.size() < length) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) break;
      if (n > 0) in.append(buf, static_cast<size_t>(n));
    }
    const std::string body = in.substr(0, length);
    in.erase(0, std::min(length, in.size()));
    ++requests_;
    {
      std::lock_guard<std::mutex> lock(mu_);
      lines_.push_back(head.substr(0, head.find("\r\n")));
    }
    const std::string reflection = head + "\r\n\r\nbody=" + body;
    const std::string answer = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: public, max-age=60\r\n"
                               "Content-Length: " + std::to_string(reflection.size()) + "\r\n\r\n" + reflection;
    if (!webtier::testing::SendAll(fd, answer)) break;
  }
  ::close(fd);
}

Victim::Victim() {
  listen_fd_ = webtier::testing::ListenLoopback(&port_);
  acceptor_ = std::thread([this] {
    while (!stop_.load()) {
      int fd = AcceptSome(listen_fd_);
      if (fd < 0) continue;
      ++connections_;
      ::close(fd);
    }
  });
}

Victim::~Victim() {
  stop_ = true;
  acceptor_.join();
  ::close(listen_fd_);
}

}  // namespace webtier::cache::testing
