// The requests a worker sends to members in one turn of its event loop,
// handed to the kernel together: one io_uring_enter for all of them instead
// of one send() each.
//
// Why: on a core a member shares with the balancer (the benchmark's layout,
// and any host that runs both), each send() wakes the member, which takes
// the core when the send returns, answers that one request and sleeps again:
// about half a context switch per request on each side, the largest single
// cost of a keep-alive request there (docs/benchmarks.md). Sent in one call,
// a turn's requests wake the member once, and it answers them all at once.
//
// How: a send queues its socket and buffers and suspends; the first send of
// a turn posts the flush, which runs after the handlers already queued (the
// rest of the turn) and submits every queued send as an IORING_OP_SENDMSG
// with MSG_DONTWAIT. Those complete inside the submission (the kernel tries
// each once and reports what the socket took, or EAGAIN), so the flush never
// waits, and each sender resumes with its own result. What a socket did not
// take is written by the caller as before (SendToMember). The descriptors
// cannot be closed or reused in between: every sender is suspended until its
// submission, which the flush makes before it resumes any of them.
//
// Without io_uring (--io-uring off, a kernel without it, or a seccomp
// profile that refuses it) ok() is false and SendToMember is WriteAll. One
// object per worker, used only from that worker's thread.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/system/error_code.hpp>

struct io_uring;

namespace webtier::balancer {

class SendBatch {
 public:
  static constexpr unsigned kRingEntries = 256;  // sends per io_uring_enter; a longer turn takes more
  static constexpr size_t kMaxParts = 4;         // buffers per send (an exchange's request has at most 4)

  // Sets the ring up when `enabled` and the kernel allows it (IORING_OP_SENDMSG included).
  SendBatch(boost::asio::io_context& io, bool enabled);
  ~SendBatch();
  SendBatch(const SendBatch&) = delete;
  SendBatch& operator=(const SendBatch&) = delete;

  bool ok() const { return ring_ != nullptr; }
  uint64_t submissions() const { return submissions_; }  // io_uring_enter calls that carried sends
  uint64_t sends() const { return sends_; }              // sends they carried

  // Queues one send of `buffers` (at most kMaxParts, alive until it
  // completes) on the connected socket `fd`. Completes with (error, bytes
  // the socket took): fewer than asked when its buffer filled,
  // would_block when it took nothing or the ring could not send it. Only
  // when ok().
  template <typename Token>
  auto AsyncSend(int fd, std::span<const boost::asio::const_buffer> buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, size_t)>(
        [this, fd, buffers](auto handler) {
          Queue(fd, buffers, std::make_unique<HandlerOf<decltype(handler)>>(std::move(handler)));
        },
        token);
  }

 private:
  struct Handler {
    virtual ~Handler() = default;
    virtual void Complete(boost::system::error_code ec, size_t bytes) = 0;
  };
  template <typename H>
  struct HandlerOf final : Handler {
    explicit HandlerOf(H&& h) : handler(std::move(h)) {}
    void Complete(boost::system::error_code ec, size_t bytes) override { std::move(handler)(ec, bytes); }
    H handler;
  };
  struct Entry {
    int fd = -1;
    std::array<iovec, kMaxParts> iov{};
    msghdr msg{};
    int result = 0;
    bool reaped = false;
    std::unique_ptr<Handler> handler;
  };
  // One turn's sends. Owned by the posted flush too: when the io_context
  // is destroyed before it runs, the senders' handlers (their coroutine
  // frames) go with the io_context's other pending work.
  struct Batch {
    std::vector<std::unique_ptr<Entry>> entries;
  };

  void Queue(int fd, std::span<const boost::asio::const_buffer> buffers, std::unique_ptr<Handler> handler);
  void Flush(Batch& batch);
  // Submits entries [first, first + n) and records each one's result.
  void Submit(Batch& batch, size_t first, unsigned n);

  boost::asio::io_context& io_;
  io_uring* ring_ = nullptr;  // null: off
  std::shared_ptr<Batch> open_;  // the current turn's, until its flush runs
  std::vector<std::unique_ptr<Entry>> spare_;
  uint64_t submissions_ = 0;
  uint64_t sends_ = 0;
};

// Writes all of `buffers` to a member's `socket` (non-blocking): through
// `batch` when it is on and the buffers fit, then whatever the socket did
// not take as WriteAll writes it; otherwise WriteAll.
boost::asio::awaitable<boost::system::error_code> SendToMember(SendBatch* batch, boost::asio::ip::tcp::socket& socket,
                                                               std::span<const boost::asio::const_buffer> buffers);

}  // namespace webtier::balancer
