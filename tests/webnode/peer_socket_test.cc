// Unit tests of PeerSocket (peer_socket.h) over a real loopback TCP
// connection: answers leave in turn order, and a client that reads none of
// its answers cannot make the webnode hold more than the bounds.
#include "webtier/webnode/peer_socket.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "webtier/testing/harness.h"

namespace webtier::webnode {
namespace {

using namespace std::chrono_literals;

// A connected pair: `server` as the webnode holds it, `client` as the peer.
class PeerSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    uint16_t port = 0;
    const int listener = testing::ListenLoopback(&port);
    ASSERT_GE(listener, 0);
    client_ = testing::ConnectLoopback(port, 5000ms);
    ASSERT_GE(client_, 0);
    const int server = ::accept(listener, nullptr, nullptr);
    ::close(listener);
    ASSERT_GE(server, 0);
    socket_ = std::make_shared<PeerSocket>(server);
  }
  void TearDown() override {
    if (client_ >= 0) ::close(client_);
  }

  // Everything the client reads until the server's end, or `limit` bytes.
  std::string ReadAll(size_t limit = SIZE_MAX) const {
    std::string got;
    char buf[65536];
    for (ssize_t n; got.size() < limit && (n = ::recv(client_, buf, sizeof buf, 0)) > 0;)
      got.append(buf, static_cast<size_t>(n));
    return got;
  }

  int client_ = -1;
  std::shared_ptr<PeerSocket> socket_;
};

TEST_F(PeerSocketTest, AnswersLeaveInTurnOrderWhateverOrderTheyAreReady) {
  ASSERT_EQ(socket_->TakeTurn(), 0u);
  ASSERT_EQ(socket_->TakeTurn(), 1u);
  ASSERT_EQ(socket_->TakeTurn(), 2u);
  EXPECT_TRUE(socket_->Write(2, "c", true));
  EXPECT_TRUE(socket_->Write(1, "b", false));
  EXPECT_TRUE(socket_->Write(0, "a", false));
  EXPECT_EQ(ReadAll(), "abc");  // and the end after the closing answer
}

TEST_F(PeerSocketTest, ManyPipelinedAnswersReachAReadingClientWholeAndInOrder) {
  constexpr int kAnswers = 2000;
  std::vector<std::string> answers;
  std::string expected;
  for (int i = 0; i < kAnswers; ++i) {
    answers.push_back("answer " + std::to_string(i) + " " + std::string(static_cast<size_t>(i % 97) * 37, 'x') + "\n");
    expected += answers.back();
  }
  std::string got;
  std::thread reader([&] { got = ReadAll(); });
  for (int i = 1; i < kAnswers; i += 2) {  // ready out of order in pairs: the later turn first
    ASSERT_TRUE(socket_->Write(static_cast<uint64_t>(i), answers[i], i == kAnswers - 1));
    ASSERT_TRUE(socket_->Write(static_cast<uint64_t>(i - 1), answers[i - 1], false));
  }
  reader.join();
  ASSERT_EQ(got.size(), expected.size());
  EXPECT_TRUE(got == expected) << "answers out of order or torn";
}

TEST_F(PeerSocketTest, AClientThatReadsNothingIsShutPastTheAnswerBound) {
  // Turn 0 never comes: every later answer waits behind it.
  for (uint64_t turn = 1; turn <= PeerSocket::kMaxQueuedAnswers; ++turn)
    ASSERT_TRUE(socket_->Write(turn, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false)) << turn;
  EXPECT_FALSE(socket_->Write(PeerSocket::kMaxQueuedAnswers + 1, "HTTP/1.1 200 OK\r\n\r\n", false));
  EXPECT_TRUE(socket_->Write(0, "late", false)) << "after the shut, answers are dropped quietly";
  EXPECT_EQ(socket_->pending(), 0u);
  EXPECT_EQ(ReadAll(), "") << "the connection ends with nothing written";
}

TEST_F(PeerSocketTest, OneLargeAnswerMayWaitButNotEightMiBBehindIt) {
  const std::string large(20 * 1024 * 1024, 'L');  // more than the socket takes, more than the bound
  ASSERT_TRUE(socket_->Write(0, large, false));
  EXPECT_GT(socket_->pending(), PeerSocket::kMaxQueuedBytes) << "the socket took all of it";
  const std::string mib(1024 * 1024, 'm');
  const uint64_t fit = PeerSocket::kMaxQueuedBytes / mib.size();
  for (uint64_t turn = 1; turn <= fit; ++turn) ASSERT_TRUE(socket_->Write(turn, mib, false)) << turn;
  EXPECT_FALSE(socket_->Write(fit + 1, mib, false));
  EXPECT_EQ(socket_->pending(), 0u) << "what was queued is let go";
  const std::string got = ReadAll();
  EXPECT_LT(got.size(), large.size()) << "the shut cut the large answer short";
}

}  // namespace
}  // namespace webtier::webnode
