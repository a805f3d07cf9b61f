// ReadSome (balancer/src/engine/io.h): one recv() per read on a healthy
// connection. After a short read the socket's receive queue is marked empty
// in Asio's reactor, so the next read waits for epoll without a failing
// recv() first; the mark must never hide bytes that arrive later.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <random>
#include <string>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include "engine/io.h"
#include "engine/reactor_hints.h"
#include "loopback_pair.h"

namespace webtier::balancer {
namespace {

using namespace std::chrono_literals;

// LoopbackPair, its server socket also watched for the peer's shutdown.
struct Pair : LoopbackPair {
  explicit Pair(asio::io_context& io) : LoopbackPair(io) { EXPECT_TRUE(WatchPeerShutdown(server)); }
};

TEST(ReadSomeTest, AShortReadMarksTheReceiveQueueEmpty) {
  asio::io_context io(1);
  Pair pair(io);
  asio::write(pair.client, asio::buffer(std::string_view("hello")));
  std::this_thread::sleep_for(20ms);  // in the server's receive queue
  EXPECT_FALSE(ReceiveQueueKnownEmpty(pair.server));  // nothing known yet: a read may find bytes
  std::string got;
  asio::co_spawn(
      io,
      [&]() -> awaitable<void> {
        char buf[64];
        auto [ec, n] = co_await ReadSome(pair.server, asio::buffer(buf));
        EXPECT_FALSE(ec) << ec.message();
        got.assign(buf, n);
        // Fewer bytes than asked for: the queue was emptied. Without the
        // mark (another reactor, another Boost), every wait costs a recv().
        EXPECT_TRUE(ReceiveQueueKnownEmpty(pair.server));
      },
      asio::detached);
  io.run_for(5s);
  EXPECT_EQ(got, "hello");
}

// Ping-pong with a peer that answers after a random pause (none, a few
// microseconds, a millisecond): bytes arrive before, during and after the
// reads that mark the queue empty. A hidden arrival would stall the loop.
TEST(ReadSomeTest, BytesArrivingAfterTheMarkAreAlwaysRead) {
  asio::io_context io(1);
  Pair pair(io);
  constexpr int kRounds = 3000;
  std::atomic<int> peer_rounds{0};
  std::thread peer([&] {
    std::mt19937 rng(7);
    char buf[16];
    for (int i = 0; i < kRounds; ++i) {
      const int pause = static_cast<int>(rng() % 4);
      if (pause == 1) std::this_thread::sleep_for(std::chrono::microseconds(rng() % 50));
      if (pause == 2) std::this_thread::sleep_for(1ms);
      error_code ec;
      asio::write(pair.client, asio::buffer("ping", 4), ec);
      if (ec) return;
      asio::read(pair.client, asio::buffer(buf, 4), ec);  // the echo
      if (ec) return;
      peer_rounds.fetch_add(1);
    }
  });
  int rounds = 0;
  asio::co_spawn(
      io,
      [&]() -> awaitable<void> {
        std::string pending;
        while (rounds < kRounds) {
          char buf[64];
          auto [ec, n] = co_await ReadSome(pair.server, asio::buffer(buf));
          if (ec) co_return;
          pending.append(buf, n);
          while (pending.size() >= 4) {
            pending.erase(0, 4);
            error_code wec;
            asio::write(pair.server, asio::buffer("pong", 4), wec);
            ++rounds;
          }
        }
      },
      asio::detached);
  io.run_for(60s);
  pair.client.shutdown(tcp::socket::shutdown_both);
  peer.join();
  EXPECT_EQ(rounds, kRounds);
  EXPECT_EQ(peer_rounds.load(), kRounds);
}

// The last bytes and the FIN behind them, reported by epoll before the
// proxy reads: the read that takes the bytes also takes the FIN, and no
// event will come for it again. The next read must see the EOF at once,
// not wait for an event.
TEST(ReadSomeTest, AFinBehindTheLastBytesIsNeverWaitedFor) {
  for (const bool reported_first : {true, false}) {
    asio::io_context io(1);
    Pair pair(io);
    asio::write(pair.client, asio::buffer(std::string_view("last words")));
    pair.client.shutdown(tcp::socket::shutdown_send);
    std::this_thread::sleep_for(20ms);
    if (reported_first) {
      // The reactor takes the event (bytes and FIN) while no read waits.
      asio::steady_timer tick(io, 20ms);
      tick.async_wait([](error_code) {});
      io.run();
      io.restart();
    }
    std::string got;
    error_code last;
    asio::co_spawn(
        io,
        [&]() -> awaitable<void> {
          char buf[64];
          for (;;) {
            auto [ec, n] = co_await ReadSome(pair.server, asio::buffer(buf));
            if (ec) {
              last = ec;
              co_return;
            }
            got.append(buf, n);
          }
        },
        asio::detached);
    io.run_for(5s);
    EXPECT_EQ(got, "last words") << reported_first;
    EXPECT_EQ(last, asio::error::eof) << reported_first;
  }
}

TEST(ReadSomeTest, EndOfStreamComesBackAsEof) {
  asio::io_context io(1);
  Pair pair(io);
  error_code result;
  size_t bytes = 1;
  asio::co_spawn(
      io,
      [&]() -> awaitable<void> {
        char buf[8];
        auto [ec, n] = co_await ReadSome(pair.server, asio::buffer(buf));  // waits: nothing yet
        result = ec;
        bytes = n;
      },
      asio::detached);
  std::thread closer([&] {
    std::this_thread::sleep_for(30ms);
    pair.client.close();
  });
  io.run_for(5s);
  closer.join();
  EXPECT_EQ(result, asio::error::eof);
  EXPECT_EQ(bytes, 0u);
}

}  // namespace
}  // namespace webtier::balancer
