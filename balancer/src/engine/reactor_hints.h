// What the proxy knows about a socket's receive queue, told to Asio's epoll
// reactor so it stops paying for reads that cannot succeed.
//
// Asio registers every socket with epoll edge-triggered and, before it
// queues a read, tries the read at once ("speculatively") whenever an event
// has arrived for the socket since its last read returned 0 bytes. A read
// that returned fewer bytes than asked for does not count as the end of the
// data for Asio, so the next read on the socket starts with a recv() that
// fails with EAGAIN: one wasted syscall per wait, on the client's socket
// before every request and on the member's before every response.
//
// A short read on a TCP socket does mean the receive queue was empty at
// that moment, and edge-triggered epoll reports any byte that arrives after
// it as a new event. HAProxy relies on the same fact (it stops reading after
// a short read and waits for the poller). So after a short read, or a read
// that would block, the proxy marks the socket's queue empty; Asio's next
// read on it then waits for the event without a syscall.
//
// One exception: the peer's FIN. A recv that returns the last bytes also
// takes the FIN queued behind them, and the event that announced the FIN
// may already have been reported; a read that then waits for another event
// waits forever. So the socket is registered for EPOLLRDHUP as well
// (WatchPeerShutdown, one epoll_ctl per connection, as HAProxy registers
// it), and the queue is never marked empty once the last epoll report for
// the socket said the peer shut down: its next read finds the EOF at once.
//
// The mark must be set in the same handler that made the read, with no
// return to the event loop in between: an event processed in between would
// otherwise be forgotten. ReadSome (io.h) does exactly that. Only for sockets
// of an io_context run by one thread (every worker's).
//
// This reaches into Asio's reactor (Boost 1.81's epoll_reactor); on any
// other reactor the functions do nothing and reads cost what Asio makes them
// cost (tests/balancer/io_test.cc fails then, so the loss is noticed).
#pragma once

#include <boost/asio/ip/tcp.hpp>

namespace webtier::balancer {

// Registers `socket` (open, on an epoll reactor) for EPOLLRDHUP; without
// it MarkReceiveQueueEmpty does nothing. One epoll_ctl, unless
// PrepareToWatchPeerShutdown came before a connect that passed it on.
// False when that failed.
bool WatchPeerShutdown(boost::asio::ip::tcp::socket& socket);

// For a socket about to connect: asks for EPOLLRDHUP with no syscall of its
// own; Asio's re-registration for the connect carries it. Call
// WatchPeerShutdown once connected (it registers only if the connect
// completed without that re-registration).
void PrepareToWatchPeerShutdown(boost::asio::ip::tcp::socket& socket);

// False when an event has come for `socket` since it was last marked (a
// read may find bytes), or when it is not known.
bool ReceiveQueueKnownEmpty(boost::asio::ip::tcp::socket& socket);

// Records that `socket`'s receive queue is empty now (a short read or
// EAGAIN just said so): the next Asio read waits for epoll instead of trying
// a recv() first. Does nothing unless WatchPeerShutdown registered the
// socket, or once the peer's FIN or an error has been reported.
void MarkReceiveQueueEmpty(boost::asio::ip::tcp::socket& socket);

}  // namespace webtier::balancer
