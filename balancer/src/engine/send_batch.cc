// One io_uring_enter for the member sends of a turn (send_batch.h).
#include "engine/send_batch.h"

#include <liburing.h>

#include <cerrno>

#include <boost/beast/core/buffers_suffix.hpp>

#include "engine/io.h"
#include "webtier/common/log.h"

namespace webtier::balancer {
namespace {

// Results after which the send is left to a plain write: nothing was sent.
bool NothingSent(int res) {
  return res == -EAGAIN || res == -EINTR || res == -ECANCELED || res == -EINVAL || res == -EOPNOTSUPP ||
         res == -ENOSYS || res == -EBADF;
}

}  // namespace

SendBatch::SendBatch(boost::asio::io_context& io, bool enabled) : io_(io) {
  if (!enabled) return;
  auto ring = std::make_unique<io_uring>();
  if (const int err = io_uring_queue_init(kRingEntries, ring.get(), 0); err < 0) {
    log::Info("balancer", "io_uring not available: member sends go one send() each").kv("err", -err);
    return;
  }
  io_uring_probe* probe = io_uring_get_probe_ring(ring.get());
  const bool sendmsg = probe != nullptr && io_uring_opcode_supported(probe, IORING_OP_SENDMSG);
  if (probe != nullptr) io_uring_free_probe(probe);
  if (!sendmsg) {
    log::Info("balancer", "io_uring without sendmsg: member sends go one send() each");
    io_uring_queue_exit(ring.get());
    return;
  }
  ring_ = ring.release();
}

SendBatch::~SendBatch() {
  if (ring_ == nullptr) return;
  io_uring_queue_exit(ring_);
  delete ring_;
}

void SendBatch::Queue(int fd, std::span<const boost::asio::const_buffer> buffers, std::unique_ptr<Handler> handler) {
  std::unique_ptr<Entry> e;
  if (!spare_.empty()) {
    e = std::move(spare_.back());
    spare_.pop_back();
  } else {
    e = std::make_unique<Entry>();
  }
  e->fd = fd;
  const size_t parts = std::min(buffers.size(), kMaxParts);
  for (size_t i = 0; i < parts; ++i) {
    e->iov[i].iov_base = const_cast<void*>(buffers[i].data());
    e->iov[i].iov_len = buffers[i].size();
  }
  e->msg = {};
  e->msg.msg_iov = e->iov.data();
  e->msg.msg_iovlen = parts;
  e->result = -EAGAIN;
  e->reaped = false;
  e->handler = std::move(handler);
  if (open_ == nullptr) {
    open_ = std::make_shared<Batch>();
    // Runs after the handlers already queued: the rest of this turn.
    boost::asio::post(io_, [this, batch = open_] { Flush(*batch); });
  }
  open_->entries.push_back(std::move(e));
}

void SendBatch::Flush(Batch& batch) {
  open_.reset();  // sends from the handlers resumed below start the next batch
  for (size_t first = 0; first < batch.entries.size() && ring_ != nullptr; first += kRingEntries) {
    const unsigned n = static_cast<unsigned>(std::min<size_t>(kRingEntries, batch.entries.size() - first));
    Submit(batch, first, n);
  }
  for (auto& e : batch.entries) {
    std::unique_ptr<Handler> handler = std::move(e->handler);
    const int res = e->result;
    spare_.push_back(std::move(e));
    if (res >= 0) {
      handler->Complete({}, static_cast<size_t>(res));
    } else if (NothingSent(res)) {
      handler->Complete(boost::asio::error::would_block, 0);
    } else {
      handler->Complete(boost::system::error_code(-res, boost::system::system_category()), 0);
    }
  }
  batch.entries.clear();
}

void SendBatch::Submit(Batch& batch, size_t first, unsigned n) {
  for (unsigned i = 0; i < n; ++i) {
    Entry& e = *batch.entries[first + i];
    io_uring_sqe* sqe = io_uring_get_sqe(ring_);  // the ring is empty here and holds kRingEntries
    io_uring_prep_sendmsg(sqe, e.fd, &e.msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    io_uring_sqe_set_data64(sqe, first + i);
  }
  int submitted;
  do {
    submitted = io_uring_submit(ring_);
  } while (submitted == -EINTR);
  ++submissions_;
  sends_ += n;
  auto reap = [&] {
    io_uring_cqe* cqe = nullptr;
    unsigned head = 0, count = 0;
    io_uring_for_each_cqe(ring_, head, cqe) {
      const uint64_t index = io_uring_cqe_get_data64(cqe);
      if (index < batch.entries.size()) {
        Entry& e = *batch.entries[index];
        e.result = cqe->res;
        e.reaped = true;
      }
      ++count;
    }
    io_uring_cq_advance(ring_, count);
  };
  reap();
  if (submitted < 0) {
    // Nothing went in: the queued entries would go with the next submission
    // and reach descriptors their senders may have closed by then. Drop the
    // ring; these and later sends go by send().
    log::Warn("balancer", "io_uring submission failed: member sends go one send() each").kv("err", -submitted);
    io_uring_queue_exit(ring_);
    delete ring_;
    ring_ = nullptr;
    return;
  }
  // MSG_DONTWAIT sends complete inside the submission (kernel 6.18 answers
  // EAGAIN at once for a full socket). Should a kernel park one instead,
  // waiting for room, cancel it: its sender then writes it the plain way.
  // The wait below is for those cancellations, which complete at once; it
  // must not return before every send has, since the kernel reads the
  // senders' buffers until then.
  unsigned missing = 0;
  for (unsigned i = 0; i < n; ++i) {
    Entry& e = *batch.entries[first + i];
    if (e.reaped) continue;
    io_uring_sqe* sqe = io_uring_get_sqe(ring_);
    if (sqe == nullptr) break;
    io_uring_prep_cancel64(sqe, first + i, 0);
    io_uring_sqe_set_data64(sqe, UINT64_MAX);
    ++missing;
  }
  if (missing == 0) return;
  for (;;) {
    io_uring_submit_and_wait(ring_, 1);
    reap();
    bool all = true;
    for (unsigned i = 0; i < n; ++i) all = all && batch.entries[first + i]->reaped;
    if (all) return;
  }
}

boost::asio::awaitable<boost::system::error_code> SendToMember(SendBatch* batch, tcp::socket& socket,
                                                               std::span<const boost::asio::const_buffer> buffers) {
  if (batch == nullptr || !batch->ok() || buffers.size() > SendBatch::kMaxParts) {
    co_return co_await WriteAll(socket, buffers);
  }
  auto [ec, sent] = co_await batch->AsyncSend(socket.native_handle(), buffers, kUse);
  if (ec == boost::asio::error::would_block) co_return co_await WriteAll(socket, buffers);
  if (ec) co_return ec;
  if (sent == boost::asio::buffer_size(buffers)) co_return boost::system::error_code{};
  beast::buffers_suffix<std::span<const boost::asio::const_buffer>> rest(buffers);
  rest.consume(sent);
  co_return co_await WriteAll(socket, rest);
}

}  // namespace webtier::balancer
