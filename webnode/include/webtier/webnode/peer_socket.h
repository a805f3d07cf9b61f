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
#include <memory>
#include <mutex>
#include <string>

namespace webtier::webnode {

class PeerSocket : public std::enable_shared_from_this<PeerSocket> {
 public:
  // How long a client may take to accept what it was sent before its
  // connection is shut in both directions.
  static constexpr std::chrono::seconds kWriteTimeout{60};

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

  // Writes `bytes` after everything written before, from any thread, without
  // blocking: what the socket does not take at once is finished by a writer
  // thread. With `close`, the write side is shut after the last byte
  // (Connection: close); later writes are dropped. A client that takes
  // nothing for kWriteTimeout loses the connection.
  void Write(std::string bytes, bool close);

  // Bytes accepted by Write and not yet taken by the socket.
  size_t pending() const;

 private:
  friend class SlowWriter;
  enum class Progress { kDone, kBlocked };
  // Sends what is pending; kDone once all of it is out or the connection failed.
  Progress Flush();
  // The deadline passed: both directions shut, what is pending dropped.
  void Abort();
  int fd() const { return fd_; }
  std::chrono::steady_clock::time_point deadline() const;

  Progress SendPendingLocked();

  const int fd_;
  mutable std::mutex mu_;
  std::string pending_;    // guarded by mu_
  size_t offset_ = 0;      // guarded by mu_: how much of pending_ is sent
  bool close_after_ = false;  // guarded by mu_
  bool ended_ = false;     // guarded by mu_: shut or failed; writes are dropped
  std::chrono::steady_clock::time_point deadline_;  // guarded by mu_
};

}  // namespace webtier::webnode
