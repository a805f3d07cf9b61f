#include "admin_forward.h"

#include <algorithm>
#include <string>

#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include "webtier/common/log.h"

namespace webtier::balancer {
namespace {

constexpr const char* kComponent = "admin";

http::response<http::string_body> JsonAnswer(http::status status, unsigned version, std::string body) {
  http::response<http::string_body> res{status, version};
  res.set(http::field::content_type, "application/json");
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

// What goes to the member: the method, target, token and body, nothing else.
http::request<http::string_body> MemberRequest(const http::request<http::string_body>& req, const Host& host) {
  http::request<http::string_body> out{req.method(), req.target(), 11};
  out.set(http::field::host, host.member().Address());
  if (auto auth = req.find(http::field::authorization); auth != req.end()) out.set(auth->name(), auth->value());
  if (auto type = req.find(http::field::content_type); type != req.end()) out.set(type->name(), type->value());
  out.set(http::field::connection, "close");
  out.body() = req.body();
  out.prepare_payload();
  return out;
}

}  // namespace

awaitable<http::response<http::string_body>> ForwardAdminRequest(const http::request<http::string_body>& req,
                                                                 std::vector<std::shared_ptr<Host>> members,
                                                                 std::chrono::milliseconds timeout) {
  const auto now = Clock::now();
  // Ejected members last: they are tried only when no other one answers.
  std::stable_partition(members.begin(), members.end(), [now](const auto& h) { return !h->Ejected(now); });
  if (members.empty()) {
    co_return JsonAnswer(http::status::service_unavailable, req.version(),
                         "{\"error\":\"no members in the pool\",\"status\":503}\n");
  }
  for (const auto& host : members) {
    beast::tcp_stream stream(co_await asio::this_coro::executor);
    stream.expires_after(timeout);
    auto [cec] = co_await stream.async_connect(host->endpoint(), kUse);
    if (cec) {
      log::Warn(kComponent, "admin request: member unreachable").kv("member", host->member().id).kv("err", cec.message());
      continue;
    }
    auto out = MemberRequest(req, *host);
    auto [wec, wn] = co_await http::async_write(stream, out, kUse);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(1 << 20);
    error_code rec = wec;
    if (!rec) std::tie(rec, std::ignore) = co_await http::async_read(stream, buffer, parser, kUse);
    if (rec) {
      log::Warn(kComponent, "admin request: member failed").kv("member", host->member().id).kv("err", rec.message());
      continue;
    }
    http::response<http::string_body> res = parser.release();
    log::Info(kComponent, "admin request forwarded")
        .kv("target", std::string_view(req.target().data(), req.target().size()))
        .kv("member", host->member().id)
        .kv("status", res.result_int());
    http::response<http::string_body> answer{res.result(), req.version()};
    if (auto type = res.find(http::field::content_type); type != res.end()) answer.set(type->name(), type->value());
    answer.set("X-Served-By", host->member().id);
    answer.body() = std::move(res.body());
    answer.prepare_payload();
    co_return answer;
  }
  co_return JsonAnswer(http::status::bad_gateway, req.version(),
                       "{\"error\":\"no member answered the admin request\",\"status\":502}\n");
}

}  // namespace webtier::balancer
