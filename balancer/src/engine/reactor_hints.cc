// Telling Asio's epoll reactor that a receive queue is empty (see reactor_hints.h).
#include "engine/reactor_hints.h"

#include <sys/epoll.h>

#include <boost/asio/detail/epoll_reactor.hpp>
#include <boost/version.hpp>

namespace webtier::balancer {

#if BOOST_VERSION == 108100 && defined(BOOST_ASIO_HAS_EPOLL) && !defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT)

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Reactor = asio::detail::epoll_reactor;
using DescriptorState = Reactor::descriptor_state;
using Mutex = asio::detail::conditionally_enabled_mutex;
constexpr int kReadOp = Reactor::read_op;
// What tells the peer's FIN (or a reset) apart from more data to come.
constexpr uint32_t kPeerDone = EPOLLRDHUP | EPOLLHUP | EPOLLERR;

// The reactor keeps, per socket, under the socket's reactor mutex: whether
// its next read should be tried at once (`try_speculative_`), the events it
// is registered for, and the events of the last epoll report for it (the
// operation's `task_result_`). All are private: an explicit instantiation
// may name private members, and hands out pointers to them (the standard's
// rule for explicit instantiations).
template <typename Tag, typename Tag::type Member>
struct Grant {
  friend typename Tag::type Get(Tag) { return Member; }
};
struct TrySpeculative {
  using type = bool (DescriptorState::*)[Reactor::max_ops];
  friend type Get(TrySpeculative);
};
struct StateMutex {
  using type = Mutex DescriptorState::*;
  friend type Get(StateMutex);
};
struct RegisteredEvents {
  using type = uint32_t DescriptorState::*;
  friend type Get(RegisteredEvents);
};
struct StateReactor {
  using type = Reactor* DescriptorState::*;
  friend type Get(StateReactor);
};
struct EpollFd {
  using type = int Reactor::*;
  friend type Get(EpollFd);
};
struct LastEvents {
  using type = unsigned int asio::detail::scheduler_operation::*;
  friend type Get(LastEvents);
};
template struct Grant<TrySpeculative, &DescriptorState::try_speculative_>;
template struct Grant<StateMutex, &DescriptorState::mutex_>;
template struct Grant<RegisteredEvents, &DescriptorState::registered_events_>;
template struct Grant<StateReactor, &DescriptorState::reactor_>;
template struct Grant<EpollFd, &Reactor::epoll_fd_>;
template struct Grant<LastEvents, &asio::detail::scheduler_operation::task_result_>;

// The socket's implementation is a protected member of basic_socket.
struct SocketImpl : tcp::socket {
  static auto Member() { return &SocketImpl::impl_; }
};

DescriptorState* State(tcp::socket& socket) { return (socket.*SocketImpl::Member()).get_implementation().reactor_data_; }

// The operation a descriptor state is (a private base: a C-style cast may
// convert to an inaccessible base class).
asio::detail::scheduler_operation& AsOperation(DescriptorState* state) {
  return *(asio::detail::scheduler_operation*)state;  // NOLINT(google-readability-casting)
}

}  // namespace

void PrepareToWatchPeerShutdown(tcp::socket& socket) {
  DescriptorState* state = State(socket);
  if (state == nullptr) return;
  Mutex::scoped_lock lock(state->*Get(StateMutex{}));
  uint32_t& registered = state->*Get(RegisteredEvents{});
  if (registered == 0 || (registered & EPOLLOUT) != 0) return;
  // The state may have served a closed socket before: forget its events.
  AsOperation(state).*Get(LastEvents{}) = 0;
  registered |= EPOLLRDHUP;  // the connect's re-registration (EPOLLOUT) passes it on
}

bool WatchPeerShutdown(tcp::socket& socket) {
  DescriptorState* state = State(socket);
  if (state == nullptr) return false;
  Mutex::scoped_lock lock(state->*Get(StateMutex{}));
  uint32_t& registered = state->*Get(RegisteredEvents{});
  if (registered == 0) return false;
  // Asio adds EPOLLOUT with an epoll_ctl of its own (for a connect, or a
  // write that had to wait); once RDHUP was asked for before that, the
  // kernel has it.
  if ((registered & (EPOLLRDHUP | EPOLLOUT)) == (EPOLLRDHUP | EPOLLOUT)) return true;
  // Registering again makes epoll report anything already pending afresh,
  // the FIN included: what an earlier report said is not needed.
  AsOperation(state).*Get(LastEvents{}) = 0;
  epoll_event ev{};
  ev.events = registered | EPOLLRDHUP;
  ev.data.ptr = state;
  Reactor* reactor = state->*Get(StateReactor{});
  if (::epoll_ctl(reactor->*Get(EpollFd{}), EPOLL_CTL_MOD, socket.native_handle(), &ev) != 0) {
    registered &= ~static_cast<uint32_t>(EPOLLRDHUP);
    return false;
  }
  registered = ev.events;  // Asio's own later re-registrations keep it
  return true;
}

bool ReceiveQueueKnownEmpty(tcp::socket& socket) {
  DescriptorState* state = State(socket);
  if (state == nullptr) return false;
  Mutex::scoped_lock lock(state->*Get(StateMutex{}));
  return !(state->*Get(TrySpeculative{}))[kReadOp];
}

void MarkReceiveQueueEmpty(tcp::socket& socket) {
  DescriptorState* state = State(socket);
  if (state == nullptr) return;
  Mutex::scoped_lock lock(state->*Get(StateMutex{}));
  // Without EPOLLRDHUP a FIN that came with the last bytes is invisible;
  // with it, a FIN already reported means the next read returns EOF at once
  // and no further event would announce it.
  if ((state->*Get(RegisteredEvents{}) & EPOLLRDHUP) == 0) return;
  if ((AsOperation(state).*Get(LastEvents{}) & kPeerDone) != 0) return;
  (state->*Get(TrySpeculative{}))[kReadOp] = false;
}

#else

void PrepareToWatchPeerShutdown(boost::asio::ip::tcp::socket&) {}
bool WatchPeerShutdown(boost::asio::ip::tcp::socket&) { return false; }
bool ReceiveQueueKnownEmpty(boost::asio::ip::tcp::socket&) { return false; }
void MarkReceiveQueueEmpty(boost::asio::ip::tcp::socket&) {}

#endif

}  // namespace webtier::balancer
