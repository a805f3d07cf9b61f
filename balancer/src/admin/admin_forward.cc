#include "admin/admin_forward.h"

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

// The purge target to send, "/admin/purge?<query>", when `target` is exactly
// that path with a query naming a path= or tag= parameter, and only
// characters a query may hold; empty otherwise (nothing else is forwarded:
// the member's other routes are not the admin port's to expose).
std::string PurgeTarget(std::string_view target) {
  constexpr std::string_view kPath = "/admin/purge?";
  if (target.substr(0, kPath.size()) != kPath) return "";
  std::string_view query = target.substr(kPath.size());
  bool named = false;
  for (std::string_view q = query; !q.empty();) {
    const size_t amp = q.find('&');
    std::string_view param = q.substr(0, amp);
    if ((param.substr(0, 5) == "path=" && param.size() > 5) || (param.substr(0, 4) == "tag=" && param.size() > 4)) {
      named = true;
    }
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  for (char c : query) {
    const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    std::string_view("-._~!$&'()*+,;=:@/?%").find(c) != std::string_view::npos;
    if (!ok) return "";
  }
  return named ? std::string(target) : "";
}

// Where the member's admin routes are: its "admin" endpoint when its record
// publishes one (a webnode's --admin-listen), else its service endpoint.
tcp::endpoint AdminEndpoint(const Member& member) {
  tcp::endpoint ep = member.endpoint();
  if (member.serverset().admin_port != 0) ep.port(member.serverset().admin_port);
  return ep;
}

// What goes to the member: the method, target, token and body, nothing else.
http::request<http::string_body> MemberRequest(const http::request<http::string_body>& req, const std::string& target,
                                               const tcp::endpoint& endpoint) {
  http::request<http::string_body> out{req.method(), target, 11};
  const std::string address = endpoint.address().to_string();
  out.set(http::field::host, endpoint.address().is_v6() ? "[" + address + "]:" + std::to_string(endpoint.port())
                                                        : address + ":" + std::to_string(endpoint.port()));
  if (auto auth = req.find(http::field::authorization); auth != req.end()) out.set(auth->name(), auth->value());
  if (auto type = req.find(http::field::content_type); type != req.end()) out.set(type->name(), type->value());
  out.set(http::field::connection, "close");
  out.body() = req.body();
  out.prepare_payload();
  return out;
}

}  // namespace

awaitable<http::response<http::string_body>> ForwardAdminRequest(const http::request<http::string_body>& req,
                                                                 std::vector<std::shared_ptr<Member>> members,
                                                                 std::chrono::milliseconds timeout) {
  const std::string_view raw_target(req.target().data(), req.target().size());
  const std::string target = PurgeTarget(raw_target);
  const std::string_view path = raw_target.substr(0, raw_target.find('?'));
  if (path == "/admin/purge" && req.method() != http::verb::post) {
    log::Warn(kComponent, "admin request refused: method").kv("method", std::string_view(req.method_string()));
    auto res = JsonAnswer(http::status::method_not_allowed, req.version(),
                          "{\"error\":\"method not allowed\",\"status\":405}\n");
    res.set(http::field::allow, "POST");
    co_return res;
  }
  if (target.empty()) {
    log::Warn(kComponent, "admin request refused: not a purge").kv("target", raw_target);
    co_return JsonAnswer(http::status::not_found, req.version(), "{\"error\":\"not found\",\"status\":404}\n");
  }
  const auto now = Clock::now();
  // Ejected members last: they are tried only when no other one answers.
  std::stable_partition(members.begin(), members.end(), [now](const auto& h) { return !h->Ejected(now); });
  if (members.empty()) {
    co_return JsonAnswer(http::status::service_unavailable, req.version(),
                         "{\"error\":\"no members in the pool\",\"status\":503}\n");
  }
  for (const auto& member : members) {
    beast::tcp_stream stream(co_await asio::this_coro::executor);
    stream.expires_after(timeout);  // the stream's own steady timer: real time, not Clock
    const tcp::endpoint endpoint = AdminEndpoint(*member);
    auto [cec] = co_await stream.async_connect(endpoint, kUse);
    if (cec) {
      log::Warn(kComponent, "admin request: member unreachable").kv("member", member->serverset().id).kv("err", cec.message());
      continue;
    }
    auto out = MemberRequest(req, target, endpoint);
    auto [wec, wn] = co_await http::async_write(stream, out, kUse);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(1 << 20);
    error_code rec = wec;
    if (!rec) std::tie(rec, std::ignore) = co_await http::async_read(stream, buffer, parser, kUse);
    if (rec) {
      log::Warn(kComponent, "admin request: member failed").kv("member", member->serverset().id).kv("err", rec.message());
      continue;
    }
    http::response<http::string_body> res = parser.release();
    log::Info(kComponent, "admin request forwarded")
        .kv("target", std::string_view(req.target().data(), req.target().size()))
        .kv("member", member->serverset().id)
        .kv("status", res.result_int());
    http::response<http::string_body> answer{res.result(), req.version()};
    if (auto type = res.find(http::field::content_type); type != res.end()) answer.set(type->name(), type->value());
    answer.set("X-Served-By", member->serverset().id);
    answer.body() = std::move(res.body());
    answer.prepare_payload();
    co_return answer;
  }
  co_return JsonAnswer(http::status::bad_gateway, req.version(),
                       "{\"error\":\"no member answered the admin request\",\"status\":502}\n");
}

}  // namespace webtier::balancer
