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
// The mark must be set in the same handler that made the read, with no
// return to the event loop in between: an event processed in between would
// otherwise be forgotten. ReadSome (io.h) does exactly that. Only for sockets
// of an io_context run by one thread (every worker's).
//
// This reaches into Asio's reactor (Boost 1.81's epoll_reactor, which the
// build checks); on any other reactor both functions do nothing and reads
// cost what Asio makes them cost.
#pragma once

#include <boost/asio/ip/tcp.hpp>

namespace webtier::balancer {

// False when an event has come for `socket` since it was last marked (a
// read may find bytes), or when it is not known.
bool ReceiveQueueKnownEmpty(boost::asio::ip::tcp::socket& socket);

// Records that `socket`'s receive queue is empty now: the next Asio read
// waits for epoll instead of trying a recv() first.
void MarkReceiveQueueEmpty(boost::asio::ip::tcp::socket& socket);

}  // namespace webtier::balancer
