// The webnode's own handle on one client connection: a duplicate of the
// socket Pistache reads from, through which every answer is written.
//
// Pistache 0.0.5 names a connection by its descriptor number alone: its write
// queue is keyed by it, and it closes the descriptor on its own schedule (the
// client's EOF, an idle or header timeout). The kernel gives a closed number
// to the next connection at once. A write queued from a handler thread, or a
// shutdown issued once such a write ended, could then land on that next
// connection, whose client would read an EOF with no answer, or another
// client's answer. A duplicate taken on the reactor thread while a request is
// being read from the connection refers to that connection for as long as it
// is open, whatever Pistache does with its number.
#pragma once

#include <pistache/peer.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>

#include "webtier/common/mutex.h"
#include "webtier/common/thread_annotations.h"

namespace webtier::webnode {

class PeerSocket : public std::enable_shared_from_this<PeerSocket> {
 public:
  // How long a client may take to accept what it was sent before its
  // connection is shut in both directions.
  static constexpr std::chrono::seconds kWriteTimeout{60};
  // A client that pipelines requests and reads no answer: Pistache reads on
  // regardless, so the answers would pile up here. Past either bound on the
  // answers waiting behind the one being sent (that one may be of any size)
  // the connection is shut.
  static constexpr size_t kMaxQueuedAnswers = 256;
  static constexpr size_t kMaxQueuedBytes = 8 * 1024 * 1024;

  // This connection's socket, duplicated on first use and kept with the Peer,
  // so it lives as long as Pistache keeps the connection (plus any write
  // still under way). Call only on the Peer's reactor thread while it reads a
  // request: the one time its descriptor is certainly this connection's.
  // Null if the descriptor cannot be duplicated.
  static std::shared_ptr<PeerSocket> Of(const std::shared_ptr<Pistache::Tcp::Peer>& peer);

  explicit PeerSocket(int fd) : fd_(fd) {}
  PeerSocket(const PeerSocket&) = delete;
  PeerSocket& operator=(const PeerSocket&) = delete;
  ~PeerSocket();  // closes the duplicate

  // The place of the next answer on this connection. Call on the reactor
  // thread as each request is taken, in the order they arrived: Pistache
  // hands pipelined requests to handlers at once, and their answers may be
  // ready in any order, but must leave in this one (RFC 9112 9.3.2).
  uint64_t TakeTurn() { return turns_++; }

  // Writes the answer of `turn` once every earlier turn's is written, from
  // any thread, without blocking: what the socket does not take at once is
  // finished by a writer thread. With `close`, the write side is shut after
  // its last byte (Connection: close) and later answers are dropped. A
  // client that takes nothing for kWriteTimeout loses the connection.
  // False when this answer would queue past kMaxQueuedAnswers or
  // kMaxQueuedBytes: the connection is shut in both directions instead and
  // every later answer dropped (once; later calls return true).
  [[nodiscard]] bool Write(uint64_t turn, std::string bytes, bool close) WEBTIER_EXCLUDES(mu_);

  // Bytes accepted by Write and not yet taken by the socket.
  size_t pending() const WEBTIER_EXCLUDES(mu_);

 private:
  friend class SlowWriter;
  enum class Progress { kDone, kBlocked };
  // Sends what is pending; kDone once all of it is out or the connection failed.
  Progress Flush() WEBTIER_EXCLUDES(mu_);
  // The deadline passed: both directions shut, what is pending dropped.
  void Abort() WEBTIER_EXCLUDES(mu_);
  int fd() const { return fd_; }
  std::chrono::steady_clock::time_point deadline() const WEBTIER_EXCLUDES(mu_);

  void QueueLocked(std::string bytes, bool close) WEBTIER_REQUIRES(mu_);
  // Both directions shut, what is queued dropped.
  void ShutLocked() WEBTIER_REQUIRES(mu_);
  // `n` more bytes of pending_ taken by the socket.
  void ConsumeLocked(size_t n) WEBTIER_REQUIRES(mu_);
  Progress SendPendingLocked() WEBTIER_REQUIRES(mu_);

  struct Answer {
    std::string bytes;
    bool close;
  };

  const int fd_;
  uint64_t turns_ = 0;  // reactor thread only
  mutable Mutex mu_;
  uint64_t next_ WEBTIER_GUARDED_BY(mu_) = 0;                 // the turn whose answer goes out next
  std::map<uint64_t, Answer> early_ WEBTIER_GUARDED_BY(mu_);  // answers ready before their turn
  size_t early_bytes_ WEBTIER_GUARDED_BY(mu_) = 0;            // their bytes
  std::deque<std::string> pending_ WEBTIER_GUARDED_BY(mu_);   // answers in order, not all taken by the socket
  size_t offset_ WEBTIER_GUARDED_BY(mu_) = 0;                 // how much of pending_.front() is sent
  size_t pending_bytes_ WEBTIER_GUARDED_BY(mu_) = 0;          // of pending_, not yet sent
  bool with_writer_ WEBTIER_GUARDED_BY(mu_) = false;          // the writer thread finishes pending_
  bool close_after_ WEBTIER_GUARDED_BY(mu_) = false;          // shut the write side after pending_
  bool ended_ WEBTIER_GUARDED_BY(mu_) = false;                // shut or failed; answers are dropped
  std::chrono::steady_clock::time_point deadline_ WEBTIER_GUARDED_BY(mu_);
};

}  // namespace webtier::webnode
