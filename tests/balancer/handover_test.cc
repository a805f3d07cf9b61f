// The handover protocol between a balancer and its successor, over real Unix
// and TCP sockets in this process: the text both ways, the sockets arriving
// whole with the connections already in their queues, and every way a peer
// can fail or lie: the successor gives up with the reason and closes what it
// got; the old side goes on serving and takes the next successor.
#include "webtier/balancer/control/handover.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <thread>

#include "webtier/testing/harness.h"

namespace webtier::balancer::control {
namespace {

using namespace std::chrono_literals;
using testing::ConnectLoopback;
using testing::ListenLoopback;
using testing::TempDir;
using testing::WaitFor;

int OpenFds() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (::readdir(d) != nullptr) ++n;
    ::closedir(d);
  }
  return n;
}

// A Unix socket listening at `path` (what a fake predecessor serves on).
int ListenUnix(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path.data(), path.size());
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 4) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

std::string ReadSome(int fd) {
  char buf[256];
  const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

class HandoverTest : public ::testing::Test {
 protected:
  std::string path() const { return dir_.path() + "/control.sock"; }

  // A fake predecessor on path(): once a successor connects and asks, `act`
  // gets the connection (and answers however the test wants).
  void FakePredecessor(std::function<void(int conn)> act) {
    listen_fd_ = ListenUnix(path());
    ASSERT_GE(listen_fd_, 0);
    fake_ = std::thread([this, act = std::move(act)] {
      const int conn = ::accept(listen_fd_, nullptr, nullptr);
      if (conn < 0) return;
      ReadSome(conn);  // "takeover 1"
      act(conn);
      ::close(conn);
    });
  }

  // What Receive says when the fake predecessor does `act`.
  Status ReceiveFrom(std::function<void(int conn)> act) {
    FakePredecessor(std::move(act));
    std::unique_ptr<Successor> s;
    if (Status c = Successor::Connect(path(), &s); !c.ok()) return c;
    Handover h;
    Status r = s->Receive(&h);
    EXPECT_TRUE(h.listeners.empty()) << "a failed handover keeps no socket";
    return r;
  }

  // An old side that offers the listening socket `proxy` alone and counts
  // its handovers in `*handed`.
  static ControlServer::Hooks Offering(int proxy, std::atomic<int>* handed) {
    return {.offer =
                [proxy] {
                  Handover h;
                  h.pid = ::getpid();
                  h.listeners.push_back({"proxy", SocketAddress(proxy), proxy});
                  return h;
                },
            .handed_over = [handed](pid_t) { ++*handed; },
            .progress = nullptr};
  }

  void TearDown() override {
    if (fake_.joinable()) fake_.join();
    if (listen_fd_ >= 0) ::close(listen_fd_);
  }

  TempDir dir_{"webtier-handover"};
  int listen_fd_ = -1;
  std::thread fake_;
};

TEST_F(HandoverTest, TheTextRoundTrips) {
  Handover h;
  h.pid = 4242;
  h.listeners = {{"proxy", "127.0.0.1:8000", 7}, {"tls", "[::1]:8443", 8}, {"control", "/run/x y/control.sock", 9}};
  h.ticket_keys = std::string("\x00\x01\xfe\xff", 4);
  h.members = {{"member_0000000001", 1500, 2}, {"member_0000000002", 0, 1}};
  Handover back;
  ASSERT_TRUE(DecodeHandover(EncodeHandover(h), &back).ok()) << EncodeHandover(h);
  EXPECT_EQ(back.pid, 4242);
  ASSERT_EQ(back.listeners.size(), 3u);
  EXPECT_EQ(back.listeners[1].role, "tls");
  EXPECT_EQ(back.listeners[1].address, "[::1]:8443");
  EXPECT_EQ(back.listeners[2].address, "/run/x y/control.sock");
  EXPECT_EQ(back.listeners[0].fd, -1) << "descriptor numbers do not travel in the text";
  EXPECT_EQ(back.ticket_keys, h.ticket_keys);
  ASSERT_EQ(back.members.size(), 2u);
  EXPECT_EQ(back.members[0].key, "member_0000000001");
  EXPECT_EQ(back.members[0].ejected_ms, 1500);
  EXPECT_EQ(back.members[0].ejections, 2);
}

TEST_F(HandoverTest, MalformedTextIsRefusedWithTheLine) {
  const std::string head = "webtier-handover 1\npid 10\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"webtier-handover 2\npid 10\nend\n", "line 1"},
      {head + "listener udp 127.0.0.1:1\nend\n", "line 3: an unknown socket role"},
      {head + "listener proxy\nend\n", "line 3: a bad socket address"},
      {head + "member k -5 1\nend\n", "line 3: a bad member line"},
      {head + "member k 5\nend\n", "line 3: a bad member line"},
      {head + "tickets 0g\nend\n", "line 3: bad ticket keys"},
      {head + "shell rm -rf /\nend\n", "line 3: unknown"},
      {head + "end\nlistener proxy 127.0.0.1:1\n", "line 4: text after"},
      {head, "no \"end\""},
      {"webtier-handover 1\nend\n", "names no pid"},
      {head + "pid 11\nend\n", "line 3: a bad pid"},
  };
  for (const auto& [text, why] : cases) {
    Handover h;
    Status s = DecodeHandover(text, &h);
    EXPECT_FALSE(s.ok()) << text;
    EXPECT_NE(s.message().find(why), std::string::npos) << text << " -> " << s.message();
  }
}

TEST_F(HandoverTest, NothingToTakeOverWhenNobodyListens) {
  std::unique_ptr<Successor> s;
  EXPECT_EQ(Successor::Connect(path(), &s).code(), ErrorCode::kNotFound);  // no file
  const int stale = ListenUnix(path());
  ::close(stale);  // a file with nobody behind it, as a crash leaves it
  EXPECT_EQ(Successor::Connect(path(), &s).code(), ErrorCode::kNotFound);
}

TEST_F(HandoverTest, TheSuccessorGetsTheSameSocketsWithTheirQueuedConnections) {
  uint16_t port = 0;
  const int proxy = ListenLoopback(&port);
  std::atomic<pid_t> successor{0};
  std::atomic<int> progress_calls{0};
  ControlServer server(path(), {.offer =
                                    [&] {
                                      Handover h;
                                      h.pid = ::getpid();
                                      h.listeners.push_back({"proxy", SocketAddress(proxy), proxy});
                                      h.ticket_keys = "keys";
                                      h.members = {{"m1", 2000, 3}};
                                      return h;
                                    },
                                .handed_over = [&](pid_t p) { successor = p; },
                                .progress =
                                    [&] {
                                      ++progress_calls;
                                      return DrainProgress{3, 1};
                                    }});
  ASSERT_TRUE(server.Listen().ok());
  struct stat st{};
  ASSERT_EQ(::stat(path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "only its own user may take the sockets";
  server.Start();

  // A client waits in the accept queue while the sockets change hands.
  const int client = ConnectLoopback(port);
  ASSERT_GE(client, 0);

  std::unique_ptr<Successor> s;
  ASSERT_TRUE(Successor::Connect(path(), &s).ok());
  Handover h;
  ASSERT_TRUE(s->Receive(&h).ok());
  EXPECT_EQ(s->peer_pid(), ::getpid()) << "the sender as the kernel knows it";
  ASSERT_EQ(h.listeners.size(), 1u);
  EXPECT_EQ(h.listeners[0].address, "127.0.0.1:" + std::to_string(port));
  EXPECT_NE(h.listeners[0].fd, proxy) << "a copy, not the number";
  EXPECT_EQ(h.ticket_keys, "keys");
  ASSERT_EQ(h.members.size(), 1u);
  EXPECT_EQ(h.members[0].ejections, 3);
  EXPECT_EQ(successor.load(), 0) << "not handed over before the successor confirms";

  // The old process closes its copy; the queued connection is still there.
  ::close(proxy);
  const int accepted = ::accept(h.listeners[0].fd, nullptr, nullptr);
  ASSERT_GE(accepted, 0) << std::strerror(errno);
  ASSERT_EQ(::send(client, "hi", 2, 0), 2);
  EXPECT_EQ(ReadSome(accepted), "hi");

  ASSERT_TRUE(s->Confirm().ok());
  EXPECT_EQ(successor.load(), ::getpid());
  EXPECT_TRUE(server.handed_over());
  std::vector<DrainProgress> reports;
  bool done = false;
  std::thread follow([&] {
    s->FollowDrain([&](DrainProgress d, bool end) {
      if (end) done = true;
      else reports.push_back(d);
    });
  });
  ASSERT_TRUE(WaitFor([&] { return progress_calls.load() >= 2; }, 5s));
  server.Stop();
  follow.join();
  EXPECT_TRUE(done);
  ASSERT_FALSE(reports.empty());
  EXPECT_EQ(reports.front().connections, 3);
  EXPECT_EQ(reports.front().requests, 1);
  EXPECT_EQ(::access(path().c_str(), F_OK), 0) << "the socket file is the successor's now";
  ::close(accepted);
  ::close(client);
  h.CloseSockets();
}

TEST_F(HandoverTest, ASuccessorThatLeavesMidwayChangesNothing) {
  uint16_t port = 0;
  const int proxy = ListenLoopback(&port);
  std::atomic<int> handed{0};
  ControlServer server(path(), Offering(proxy, &handed));
  ASSERT_TRUE(server.Listen().ok());
  server.Start();
  {
    // Takes the sockets and disappears without confirming.
    std::unique_ptr<Successor> s;
    ASSERT_TRUE(Successor::Connect(path(), &s).ok());
    Handover h;
    ASSERT_TRUE(s->Receive(&h).ok());
    h.CloseSockets();
  }
  {
    // Asks for something else.
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, path().data(), path().size());
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ASSERT_TRUE(testing::SendAll(fd, "give me everything\n"));
    EXPECT_EQ(ReadSome(fd), "") << "nothing is sent for a request that is not a takeover";
    ::close(fd);
  }
  EXPECT_EQ(handed.load(), 0);
  EXPECT_FALSE(server.handed_over());
  // The old process still serves (its socket is open and accepts) and a
  // proper successor still gets everything.
  const int client = ConnectLoopback(port);
  ASSERT_GE(client, 0);
  const int accepted = ::accept(proxy, nullptr, nullptr);
  EXPECT_GE(accepted, 0);
  std::unique_ptr<Successor> s;
  ASSERT_TRUE(Successor::Connect(path(), &s).ok());
  Handover h;
  ASSERT_TRUE(s->Receive(&h).ok());
  ASSERT_TRUE(s->Confirm().ok());
  EXPECT_EQ(handed.load(), 1);
  server.Stop();
  h.CloseSockets();
  ::close(accepted);
  ::close(client);
  ::close(proxy);
}

// SIGTERM while a successor holds the sockets but has not confirmed: the
// old process stops at once (it keeps its sockets and drains), instead of
// waiting out the step's 10 s for a confirmation.
TEST_F(HandoverTest, AStopDuringAHandoverDoesNotWaitForTheSuccessor) {
  uint16_t port = 0;
  const int proxy = ListenLoopback(&port);
  std::atomic<int> handed{0};
  ControlServer server(path(), Offering(proxy, &handed));
  ASSERT_TRUE(server.Listen().ok());
  server.Start();
  std::unique_ptr<Successor> s;
  ASSERT_TRUE(Successor::Connect(path(), &s).ok());
  Handover h;
  ASSERT_TRUE(s->Receive(&h).ok());
  const auto t0 = std::chrono::steady_clock::now();
  server.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, kStepTimeout / 2) << "Stop waited for the successor";
  EXPECT_EQ(handed.load(), 0);
  EXPECT_FALSE(server.handed_over());
  EXPECT_FALSE(s->Confirm().ok()) << "too late: the old process is stopping with its sockets";
  h.CloseSockets();
  ::close(proxy);
}

TEST_F(HandoverTest, ALiveControlSocketIsNotTakenAndAStaleOneIsReplaced) {
  const int live = ListenUnix(path());
  ControlServer second(path(), {});
  const Status s = second.Listen();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("already listens"), std::string::npos) << s.message();
  ::close(live);  // now stale: a crash left the file
  ControlServer after_crash(path(), {});
  EXPECT_TRUE(after_crash.Listen().ok());
}

// The successor refuses whatever does not add up, and keeps no descriptor.
TEST_F(HandoverTest, APredecessorThatLiesIsRefused) {
  uint16_t port = 0;
  const int proxy = ListenLoopback(&port);
  const std::string head = "webtier-handover 1\npid " + std::to_string(::getpid()) + "\n";
  const std::string line = "listener proxy 127.0.0.1:" + std::to_string(port) + "\n";
  const int before = OpenFds();

  struct Case {
    std::string name;
    std::function<void(int)> act;
    std::string error;
  };
  const std::vector<Case> cases = {
      {"names two sockets, sends one", [&](int c) { SendWithSockets(c, head + line + line + "end\n", {proxy}); },
       "named 2 sockets but sent 1"},
      {"sends one more than it names", [&](int c) { SendWithSockets(c, head + line + "end\n", {proxy, proxy}); },
       "named 1 sockets but sent 2"},
      {"a socket bound elsewhere",
       [&](int c) { SendWithSockets(c, head + "listener proxy 127.0.0.1:1\nend\n", {proxy}); }, "is bound to 127.0.0.1:"},
      {"a connected socket, not a listening one",
       [&](int c) {
         const int conn = ConnectLoopback(port);
         SendWithSockets(c, head + "listener proxy " + SocketAddress(conn) + "\nend\n", {conn});
         ::close(conn);
       },
       "is not listening"},
      {"a datagram socket",
       [&](int c) {
         const int udp = ::socket(AF_INET, SOCK_DGRAM, 0);
         SendWithSockets(c, head + line + "end\n", {udp});
         ::close(udp);
       },
       "is not a stream socket"},
      {"a TCP socket as the control socket",
       [&](int c) { SendWithSockets(c, head + "listener control 127.0.0.1:" + std::to_string(port) + "\nend\n", {proxy}); },
       "wrong address family"},
      {"another pid", [&](int c) { SendWithSockets(c, "webtier-handover 1\npid 1\n" + line + "end\n", {proxy}); },
       "says it is pid 1"},
      {"garbage", [&](int c) { SendWithSockets(c, "HTTP/1.1 200 OK\nend\n", {proxy}); }, "not a webtier handover"},
      {"disappears before sending", [](int) {}, "closed the control socket in the middle"},
      {"disappears in the middle", [&](int c) { SendWithSockets(c, head + line, {proxy}); },
       "closed the control socket in the middle"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ::unlink(path().c_str());
    const Status s = ReceiveFrom(c.act);
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.message().find(c.error), std::string::npos) << s.message();
    TearDown();
    listen_fd_ = -1;
  }
  EXPECT_EQ(OpenFds(), before) << "a refused handover leaks no descriptor";
  ::close(proxy);
}

}  // namespace
}  // namespace webtier::balancer::control
