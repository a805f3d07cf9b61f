// PeerSocket: answers written to the connection they belong to.
#include "webtier/webnode/peer_socket.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <iterator>
#include <thread>
#include <vector>

#include "webtier/common/log.h"

#if defined(__SANITIZE_THREAD__)
#define WEBTIER_TSAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WEBTIER_TSAN_BUILD 1
#endif
#endif
#ifndef WEBTIER_TSAN_BUILD
#define WEBTIER_TSAN_BUILD 0
#endif
#if WEBTIER_TSAN_BUILD
#include <sanitizer/tsan_interface.h>
#endif

namespace webtier::webnode {

namespace {
constexpr char kPeerDataName[] = "webtier.socket";
}  // namespace

// One thread finishes the writes a socket did not take at once, polling their
// sockets for room. Started on first use; a process whose clients read what
// they are sent never needs it.
class SlowWriter {
 public:
  static SlowWriter& Instance() {
    static SlowWriter writer;
    return writer;
  }

  void Add(std::shared_ptr<PeerSocket> socket) WEBTIER_EXCLUDES(mu_) {
    {
      MutexLock lock(&mu_);
      added_.push_back(std::move(socket));
    }
    const uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = ::write(wake_, &one, sizeof one);
  }

 private:
  SlowWriter() : wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)), thread_([this] { Run(); }) {}
  ~SlowWriter() {
    {
      MutexLock lock(&mu_);
      stop_ = true;
    }
    const uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = ::write(wake_, &one, sizeof one);
    thread_.join();
    ::close(wake_);
  }

  void Run() WEBTIER_EXCLUDES(mu_) {
    std::vector<std::shared_ptr<PeerSocket>> active;
    std::vector<pollfd> fds;
    for (;;) {
      {
        MutexLock lock(&mu_);
        if (stop_) return;
        for (auto& s : added_) active.push_back(std::move(s));
        added_.clear();
      }
      const auto now = std::chrono::steady_clock::now();
      auto wait = std::chrono::milliseconds(1000);
      fds.assign(1, pollfd{wake_, POLLIN, 0});
      for (const auto& s : active) {
        fds.push_back(pollfd{s->fd(), POLLOUT, 0});
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(s->deadline() - now);
        wait = std::clamp(left, std::chrono::milliseconds(0), wait);
      }
      ::poll(fds.data(), fds.size(), static_cast<int>(wait.count()));
      if (fds[0].revents != 0) {
        uint64_t count = 0;
        [[maybe_unused]] const ssize_t n = ::read(wake_, &count, sizeof count);
      }
      const auto after = std::chrono::steady_clock::now();
      size_t keep = 0;
      for (size_t i = 0; i < active.size(); ++i) {
        PeerSocket& s = *active[i];
        bool done = false;
        if (fds[i + 1].revents != 0) done = s.Flush() == PeerSocket::Progress::kDone;
        if (!done && after >= s.deadline()) {
          log::Warn("http", "client took nothing for the write timeout: connection shut")
              .kv("pending_bytes", s.pending());
          s.Abort();
          done = true;
        }
        if (!done) active[keep++] = std::move(active[i]);
      }
      active.resize(keep);
    }
  }

  const int wake_;
  Mutex mu_;
  std::vector<std::shared_ptr<PeerSocket>> added_ WEBTIER_GUARDED_BY(mu_);
  bool stop_ WEBTIER_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

namespace {

// Pistache is not built with ThreadSanitizer, so the reference counting it
// does on what a Peer keeps (the count dropped, the object handed to another
// thread and freed there) is invisible to TSan. These two tell it what that
// counting guarantees: everything done with the object happens before its
// destruction. No code in other builds.
void HandOverForTsan([[maybe_unused]] void* p) {
#if WEBTIER_TSAN_BUILD
  __tsan_release(p);
#endif
}
void TakeBackForTsan([[maybe_unused]] void* p) {
#if WEBTIER_TSAN_BUILD
  __tsan_acquire(p);
#endif
}

// What the Peer keeps: the socket's reference, so that the socket's own last
// release happens in this file's code, which TSan sees.
struct Held {
  explicit Held(std::shared_ptr<PeerSocket> s) : socket(std::move(s)) { HandOverForTsan(this); }
  ~Held() { TakeBackForTsan(this); }
  Held(const Held&) = delete;
  Held& operator=(const Held&) = delete;
  std::shared_ptr<PeerSocket> socket;
};

}  // namespace

std::shared_ptr<PeerSocket> PeerSocket::Of(const std::shared_ptr<Pistache::Tcp::Peer>& peer) {
  if (auto data = peer->tryGetData(kPeerDataName)) {
    auto* held = static_cast<Held*>(data.get());
    TakeBackForTsan(held);
    std::shared_ptr<PeerSocket> socket = held->socket;
    data.reset();
    HandOverForTsan(held);
    return socket;
  }
  const int fd = ::fcntl(peer->fd(), F_DUPFD_CLOEXEC, 0);
  if (fd < 0) {
    log::Error("http", "cannot duplicate a client socket").kv("errno", errno);
    return nullptr;
  }
  auto socket = std::make_shared<PeerSocket>(fd);
  peer->putData(kPeerDataName, std::make_shared<Held>(socket));
  return socket;
}

PeerSocket::~PeerSocket() { ::close(fd_); }

bool PeerSocket::Write(uint64_t turn, std::string bytes, bool close) {
  ReleasableMutexLock lock(&mu_);
  if (ended_ || close_after_) return true;  // nothing follows a close
  // What waits behind the answer being sent (the first in pending_).
  const size_t sending = pending_.empty() ? 0 : pending_.front().size() - offset_;
  const size_t behind = early_.size() + (pending_.empty() ? 0 : pending_.size() - 1);
  const bool alone = behind == 0 && sending == 0;
  if (behind + 1 > kMaxQueuedAnswers ||
      (!alone && early_bytes_ + pending_bytes_ - sending + bytes.size() > kMaxQueuedBytes)) {
    ShutLocked();
    return false;
  }
  if (turn != next_) {
    early_bytes_ += bytes.size();
    early_.insert_or_assign(turn, Answer{std::move(bytes), close});
    return true;
  }
  QueueLocked(std::move(bytes), close);
  for (++next_; !early_.empty() && early_.begin()->first == next_; ++next_) {
    auto answer = early_.extract(early_.begin());
    early_bytes_ -= answer.mapped().bytes.size();
    QueueLocked(std::move(answer.mapped().bytes), answer.mapped().close);
  }
  if (with_writer_ || SendPendingLocked() == Progress::kDone) return true;
  with_writer_ = true;
  deadline_ = std::chrono::steady_clock::now() + kWriteTimeout;
  lock.Release();
  SlowWriter::Instance().Add(shared_from_this());
  return true;
}

void PeerSocket::QueueLocked(std::string bytes, bool close) {
  if (ended_ || close_after_) return;  // nothing follows a close
  pending_bytes_ += bytes.size();
  pending_.push_back(std::move(bytes));
  close_after_ = close;
}

void PeerSocket::ConsumeLocked(size_t n) {
  pending_bytes_ -= n;
  while (!pending_.empty() && pending_.front().size() - offset_ <= n) {
    n -= pending_.front().size() - offset_;
    pending_.pop_front();
    offset_ = 0;
  }
  offset_ += n;
}

size_t PeerSocket::pending() const {
  MutexLock lock(&mu_);
  return pending_bytes_;
}

PeerSocket::Progress PeerSocket::Flush() {
  MutexLock lock(&mu_);
  const Progress p = SendPendingLocked();
  if (p == Progress::kDone) with_writer_ = false;
  return p;
}

void PeerSocket::Abort() {
  MutexLock lock(&mu_);
  ShutLocked();
}

void PeerSocket::ShutLocked() {
  ::shutdown(fd_, SHUT_RDWR);  // Pistache sees the end on its descriptor and lets go of the Peer
  ended_ = true;
  with_writer_ = false;
  pending_.clear();
  offset_ = 0;
  pending_bytes_ = 0;
  early_.clear();
  early_bytes_ = 0;
}

std::chrono::steady_clock::time_point PeerSocket::deadline() const {
  MutexLock lock(&mu_);
  return deadline_;
}

PeerSocket::Progress PeerSocket::SendPendingLocked() {
  while (!pending_.empty()) {
    // Several answers in one call: a pipelining client's answers leave together.
    iovec parts[16];
    size_t count = 0;
    for (auto it = pending_.begin(); it != pending_.end() && count < std::size(parts); ++it, ++count) {
      const size_t skip = count == 0 ? offset_ : 0;
      parts[count] = iovec{it->data() + skip, it->size() - skip};
    }
    msghdr message{};
    message.msg_iov = parts;
    message.msg_iovlen = count;
    const ssize_t n = ::sendmsg(fd_, &message, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0 || (n == 0 && pending_bytes_ == 0)) {
      ConsumeLocked(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Progress::kBlocked;
    ended_ = true;  // the client has gone (EPIPE, ECONNRESET): nothing more to say
    break;
  }
  pending_.clear();
  offset_ = 0;
  pending_bytes_ = 0;
  if (close_after_ && !ended_) {
    ::shutdown(fd_, SHUT_WR);
    ended_ = true;
  }
  return Progress::kDone;
}

}  // namespace webtier::webnode
