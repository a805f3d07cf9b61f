// EchoBackend (Beast, coroutines) and a raw-socket client for abuse tests.
#include "echo_backend.h"

#include <poll.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <cstdlib>
#include <stdexcept>
#include <thread>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

namespace webtier::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using asio::awaitable;

namespace {

constexpr auto kUse = asio::as_tuple(asio::use_awaitable);

awaitable<void> Serve(tcp::socket socket, std::string id) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(64 * 1024 * 1024);
    parser.header_limit(64 * 1024);  // what the balancer lets through (--max-header-bytes) and more
    auto [ec, n] = co_await http::async_read(stream, buffer, parser, kUse);
    if (ec) break;
    auto& req = parser.get();
    const bool keep = req.keep_alive();
    std::string target(req.target());
    if (target.rfind("/sleep/", 0) == 0) {
      asio::steady_timer t(stream.get_executor());
      t.expires_after(std::chrono::milliseconds(std::atoi(target.c_str() + 7)));
      co_await t.async_wait(kUse);
    }
    if (target == "/chunked") {
      http::response<http::empty_body> res{http::status::ok, 11};
      res.set("X-Served-By", id);
      res.keep_alive(keep);
      res.chunked(true);
      http::response_serializer<http::empty_body> sr{res};
      auto [e1, w1] = co_await http::async_write_header(stream, sr, kUse);
      if (e1) break;
      for (std::string_view piece : {"alpha-", "beta-", "gamma"}) {
        auto [e2, w2] = co_await asio::async_write(stream, http::make_chunk(asio::buffer(piece)), kUse);
        if (e2) co_return;
      }
      auto [e3, w3] = co_await asio::async_write(stream, http::make_chunk_last(), kUse);
      if (e3 || !keep) break;
      continue;
    }
    if (target == "/close") {
      std::string raw = "HTTP/1.1 200 OK\r\nX-Served-By: " + id + "\r\nConnection: close\r\n\r\nclose-delimited body";
      co_await asio::async_write(stream, asio::buffer(raw), kUse);
      break;
    }
    http::response<http::string_body> res{http::status::ok, req.version()};
    if (target.rfind("/big/", 0) == 0) {
      res.body().assign(std::strtoul(target.c_str() + 5, nullptr, 10), 'x');
      res.set(http::field::content_type, "application/octet-stream");
    } else if (target.rfind("/status/", 0) == 0) {
      res.result(static_cast<unsigned>(std::atoi(target.c_str() + 8)));
      res.body() = "status\n";
    } else {
      nlohmann::json headers = nlohmann::json::object();
      for (const auto& f : req) {
        std::string name(f.name_string());
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        std::string v(f.value());
        if (headers.contains(name)) headers[name] = headers[name].get<std::string>() + "\n" + v;
        else headers[name] = v;
      }
      res.set(http::field::content_type, "application/json");
      res.body() = nlohmann::json{{"server", id},
                                  {"method", std::string(req.method_string())},
                                  {"target", target},
                                  {"headers", headers},
                                  {"body_size", req.body().size()}}
                       .dump();
    }
    res.set("X-Served-By", id);
    res.keep_alive(keep);
    res.prepare_payload();
    auto [wec, wn] = co_await http::async_write(stream, res, kUse);
    if (wec || !keep) break;
  }
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

}  // namespace

struct EchoBackend::Impl {
  std::string id;
  asio::io_context ctx;
  tcp::acceptor acceptor{ctx};
  std::vector<std::thread> threads;

  awaitable<void> Accept() {
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(kUse);
      if (ec) {
        if (!acceptor.is_open()) co_return;
        continue;
      }
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      asio::co_spawn(ctx, Serve(std::move(socket), id), asio::detached);
    }
  }
};

EchoBackend::EchoBackend(std::string id, uint16_t port, int threads) : impl_(std::make_unique<Impl>()) {
  impl_->id = std::move(id);
  tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
  impl_->acceptor.open(ep.protocol());
  impl_->acceptor.set_option(asio::socket_base::reuse_address(true));
  impl_->acceptor.bind(ep);
  impl_->acceptor.listen();
  asio::co_spawn(impl_->ctx, impl_->Accept(), asio::detached);
  for (int i = 0; i < threads; ++i) impl_->threads.emplace_back([this] { impl_->ctx.run(); });
}

EchoBackend::~EchoBackend() {
  impl_->ctx.stop();
  for (auto& t : impl_->threads) t.join();
}

uint16_t EchoBackend::port() const { return impl_->acceptor.local_endpoint().port(); }
const std::string& EchoBackend::id() const { return impl_->id; }

void EchoBackend::RunForever() {
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
}

std::string RawExchange(uint16_t port, const std::string& raw, std::chrono::milliseconds timeout, size_t pause_after,
                        std::chrono::milliseconds pause) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return "";
  }
  auto send_all = [&](std::string_view s) {
    while (!s.empty()) {
      ssize_t n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      s.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  };
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto read_until = [&](std::chrono::steady_clock::time_point until) {
    char buf[65536];
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
      if (left.count() <= 0) return true;
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return true;
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return false;  // closed
      out.append(buf, static_cast<size_t>(n));
    }
  };
  std::string_view all(raw);
  if (pause_after < all.size()) {
    bool ok = send_all(all.substr(0, pause_after));
    if (ok && !read_until(std::chrono::steady_clock::now() + pause)) {
      ::close(fd);
      return out;
    }
    all.remove_prefix(pause_after);
  }
  send_all(all);
  read_until(deadline);
  ::close(fd);
  return out;
}

}  // namespace webtier::testing
