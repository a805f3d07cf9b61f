// SendBatch and SendToMember (balancer/src/engine/send_batch.h): the member
// sends of one turn go to the kernel in one submission; every byte arrives,
// in order, whatever each socket could take; errors come back to their
// sender; without io_uring the same calls write as before.
#include <gtest/gtest.h>
#include <liburing.h>

#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>

#include "engine/io.h"
#include "engine/send_batch.h"
#include "loopback_pair.h"

namespace webtier::balancer {
namespace {

using namespace std::chrono_literals;

// LoopbackPair as a member connection: the proxy sends on `sender`, the
// test's thread reads `receiver`.
struct Pair : LoopbackPair {
  explicit Pair(asio::io_context& io) : LoopbackPair(io) {}
  tcp::socket& sender = server;
  tcp::socket& receiver = client;
};

bool RingAvailable() {
  io_uring ring;
  if (io_uring_queue_init(2, &ring, 0) < 0) return false;
  io_uring_queue_exit(&ring);
  return true;
}

// Twenty sends started in one turn, two buffers each, to five sockets: one
// submission carries them all, and each socket receives its four requests
// whole and in the order they were sent.
TEST(SendBatchTest, ATurnsSendsGoInOneSubmissionAndArriveInOrder) {
  if (!RingAvailable()) GTEST_SKIP() << "io_uring refused here";
  asio::io_context io(1);
  SendBatch batch(io, true);
  ASSERT_TRUE(batch.ok());
  std::vector<std::unique_ptr<Pair>> pairs;
  for (int i = 0; i < 5; ++i) pairs.push_back(std::make_unique<Pair>(io));
  int completed = 0;
  auto send_all = [&](int socket) -> awaitable<void> {
    for (int k = 0; k < 4; ++k) {
      const std::string head = "GET /" + std::to_string(socket) + "/" + std::to_string(k) + " HTTP/1.1\r\n";
      const std::string tail = "Host: t\r\n\r\n";
      const std::array<asio::const_buffer, 2> parts{asio::buffer(head), asio::buffer(tail)};
      const error_code ec = co_await SendToMember(&batch, pairs[socket]->sender, parts);
      EXPECT_FALSE(ec) << ec.message();
      ++completed;
    }
  };
  for (int i = 0; i < 5; ++i) asio::co_spawn(io, send_all(i), asio::detached);
  io.run_for(5s);
  EXPECT_EQ(completed, 20);
  // Each turn's first sends of the five coroutines share a submission.
  EXPECT_EQ(batch.sends(), 20u);
  EXPECT_EQ(batch.submissions(), 4u);
  for (int i = 0; i < 5; ++i) {
    std::string expected;
    for (int k = 0; k < 4; ++k) {
      expected += "GET /" + std::to_string(i) + "/" + std::to_string(k) + " HTTP/1.1\r\nHost: t\r\n\r\n";
    }
    std::string got(expected.size(), '\0');
    asio::read(pairs[i]->receiver, asio::buffer(got));
    EXPECT_EQ(got, expected);
  }
}

// A socket whose peer does not read takes part of a large send, then
// nothing: SendToMember finishes the rest with plain writes once the peer
// reads, and every byte arrives once, in order.
TEST(SendBatchTest, WhatAFullSocketDidNotTakeIsWrittenWhenItDrains) {
  if (!RingAvailable()) GTEST_SKIP() << "io_uring refused here";
  asio::io_context io(1);
  SendBatch batch(io, true);
  Pair pair(io);
  pair.sender.set_option(asio::socket_base::send_buffer_size(16384));
  pair.receiver.set_option(asio::socket_base::receive_buffer_size(16384));
  std::string big(4 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  std::atomic<bool> done{false};  // set on the io thread, read on this one
  asio::co_spawn(
      io,
      [&]() -> awaitable<void> {
        const std::array<asio::const_buffer, 1> parts{asio::buffer(big)};
        const error_code ec = co_await SendToMember(&batch, pair.sender, parts);
        EXPECT_FALSE(ec) << ec.message();
        done = true;
      },
      asio::detached);
  std::thread io_thread([&] { io.run_for(10s); });
  std::this_thread::sleep_for(200ms);
  EXPECT_FALSE(done);  // the socket is full and nobody reads
  std::string got(big.size(), '\0');
  asio::read(pair.receiver, asio::buffer(got));
  io_thread.join();
  EXPECT_TRUE(done);
  EXPECT_EQ(got, big);
  EXPECT_EQ(batch.sends(), 1u);
}

// A send to a connection the member reset comes back as that error (and no
// SIGPIPE kills the process), to its own sender only.
TEST(SendBatchTest, AResetConnectionFailsOnlyItsOwnSend) {
  if (!RingAvailable()) GTEST_SKIP() << "io_uring refused here";
  asio::io_context io(1);
  SendBatch batch(io, true);
  Pair reset(io);
  Pair healthy(io);
  reset.receiver.set_option(asio::socket_base::linger(true, 0));
  reset.receiver.close();  // RST
  std::this_thread::sleep_for(50ms);
  error_code reset_ec, healthy_ec;
  const std::string request = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
  const std::array<asio::const_buffer, 1> parts{asio::buffer(request)};
  asio::co_spawn(
      io, [&]() -> awaitable<void> { reset_ec = co_await SendToMember(&batch, reset.sender, parts); },
      asio::detached);
  asio::co_spawn(
      io, [&]() -> awaitable<void> { healthy_ec = co_await SendToMember(&batch, healthy.sender, parts); },
      asio::detached);
  io.run_for(5s);
  EXPECT_TRUE(reset_ec == asio::error::connection_reset || reset_ec == asio::error::broken_pipe)
      << reset_ec.message();
  EXPECT_FALSE(healthy_ec) << healthy_ec.message();
  std::string got(request.size(), '\0');
  asio::read(healthy.receiver, asio::buffer(got));
  EXPECT_EQ(got, request);
  EXPECT_EQ(batch.submissions(), 1u);
}

// --io-uring off: no ring, and SendToMember writes as WriteAll does.
TEST(SendBatchTest, OffSendsOneWriteEach) {
  asio::io_context io(1);
  SendBatch batch(io, false);
  EXPECT_FALSE(batch.ok());
  Pair pair(io);
  const std::string request = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
  const std::array<asio::const_buffer, 1> parts{asio::buffer(request)};
  error_code ec = asio::error::would_block;
  asio::co_spawn(
      io, [&]() -> awaitable<void> { ec = co_await SendToMember(&batch, pair.sender, parts); }, asio::detached);
  io.run_for(5s);
  EXPECT_FALSE(ec) << ec.message();
  std::string got(request.size(), '\0');
  asio::read(pair.receiver, asio::buffer(got));
  EXPECT_EQ(got, request);
  EXPECT_EQ(batch.submissions(), 0u);
}

}  // namespace
}  // namespace webtier::balancer
