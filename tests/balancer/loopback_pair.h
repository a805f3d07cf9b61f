// A connected loopback TCP pair for the engine's in-process tests: `server`
// on the test's io_context (non-blocking, as the proxy's sockets are),
// `client` blocking, for a thread of the test. Both without Nagle.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace webtier::balancer {

struct LoopbackPair {
  explicit LoopbackPair(boost::asio::io_context& io) : server(io), client(peer_io) {
    using boost::asio::ip::tcp;
    tcp::acceptor acceptor(io, tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
    client.connect(acceptor.local_endpoint());
    acceptor.accept(server);
    server.non_blocking(true);
    server.set_option(tcp::no_delay(true));
    client.set_option(tcp::no_delay(true));
  }
  boost::asio::io_context peer_io;
  boost::asio::ip::tcp::socket server;
  boost::asio::ip::tcp::socket client;
};

}  // namespace webtier::balancer
