// Telling Asio's epoll reactor that a receive queue is empty (see reactor_hints.h).
#include "reactor_hints.h"

#include <boost/asio/detail/epoll_reactor.hpp>
#include <boost/version.hpp>

namespace webtier::balancer {

#if BOOST_VERSION == 108100 && defined(BOOST_ASIO_HAS_EPOLL) && !defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT)

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using DescriptorState = asio::detail::epoll_reactor::descriptor_state;
constexpr int kReadOp = asio::detail::epoll_reactor::read_op;

// The reactor keeps, per socket, whether its next read should be tried at
// once (`try_speculative_`), under the socket's reactor mutex. Both are
// private: an explicit instantiation may name private members, and hands
// out pointers to them (the standard's rule for explicit instantiations).
template <typename Tag, typename Tag::type Member>
struct Grant {
  friend typename Tag::type Get(Tag) { return Member; }
};
struct TrySpeculative {
  using type = bool (DescriptorState::*)[asio::detail::epoll_reactor::max_ops];
  friend type Get(TrySpeculative);
};
struct StateMutex {
  using type = asio::detail::conditionally_enabled_mutex DescriptorState::*;
  friend type Get(StateMutex);
};
template struct Grant<TrySpeculative, &DescriptorState::try_speculative_>;
template struct Grant<StateMutex, &DescriptorState::mutex_>;

// The socket's implementation is a protected member of basic_socket.
struct SocketImpl : tcp::socket {
  static auto Member() { return &SocketImpl::impl_; }
};

DescriptorState* State(tcp::socket& socket) { return (socket.*SocketImpl::Member()).get_implementation().reactor_data_; }

}  // namespace

bool ReceiveQueueKnownEmpty(tcp::socket& socket) {
  DescriptorState* state = State(socket);
  if (state == nullptr) return false;
  asio::detail::conditionally_enabled_mutex::scoped_lock lock(state->*Get(StateMutex{}));
  return !(state->*Get(TrySpeculative{}))[kReadOp];
}

void MarkReceiveQueueEmpty(tcp::socket& socket) {
  DescriptorState* state = State(socket);
  if (state == nullptr) return;
  asio::detail::conditionally_enabled_mutex::scoped_lock lock(state->*Get(StateMutex{}));
  (state->*Get(TrySpeculative{}))[kReadOp] = false;
}

#else

bool ReceiveQueueKnownEmpty(boost::asio::ip::tcp::socket&) { return false; }
void MarkReceiveQueueEmpty(boost::asio::ip::tcp::socket&) {}

#endif

}  // namespace webtier::balancer
