// Request framing checks and header rewriting.
#include "webtier/balancer/http_rules.h"

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/rfc7230.hpp>

#include <random>
#include <vector>

namespace webtier::balancer {

namespace http = boost::beast::http;
using boost::beast::iequals;

std::string_view CheckRequestFraming(const http::request_header<>& h) {
  size_t content_lengths = 0, transfer_encodings = 0, hosts = 0;
  for (const auto& f : h) {
    switch (f.name()) {
      case http::field::content_length:
        ++content_lengths;
        if (f.value().find(',') != boost::beast::string_view::npos) return "Content-Length is a list";
        break;
      case http::field::transfer_encoding: ++transfer_encodings; break;
      case http::field::host: ++hosts; break;
      default: break;
    }
  }
  if (content_lengths > 1) return "duplicate Content-Length";
  if (transfer_encodings > 0) {
    if (content_lengths > 0) return "Content-Length with Transfer-Encoding";
    if (transfer_encodings > 1) return "duplicate Transfer-Encoding";
    if (h.version() < 11) return "Transfer-Encoding on HTTP/1.0";
    http::token_list codings{h[http::field::transfer_encoding]};
    boost::beast::string_view last;
    for (auto c : codings) last = c;
    if (!iequals(last, "chunked")) return "Transfer-Encoding does not end in chunked";
  }
  if (h.version() >= 11 && hosts == 0) return "missing Host";
  if (hosts > 1) return "duplicate Host";
  return {};
}

void StripHopByHop(http::fields& fields) {
  auto connection = fields.find(http::field::connection);
  if (connection != fields.end()) {
    std::vector<std::string> named;
    for (auto token : http::token_list{connection->value()}) {
      if (iequals(token, "close") || iequals(token, "keep-alive")) continue;
      named.emplace_back(token);
    }
    for (const auto& n : named) {
      // Never let Connection remove the fields that frame the message.
      if (iequals(n, "content-length") || iequals(n, "transfer-encoding") || iequals(n, "host")) continue;
      fields.erase(n);
    }
    fields.erase(http::field::connection);
  }
  fields.erase(http::field::keep_alive);
  fields.erase(http::field::te);
  fields.erase(http::field::trailer);
  fields.erase(http::field::upgrade);
  for (auto it = fields.begin(); it != fields.end();) {
    auto name = it->name_string();
    if (name.size() >= 6 && iequals(name.substr(0, 6), "proxy-")) it = fields.erase(it);
    else ++it;
  }
}

bool IsIdempotent(http::verb method) {
  switch (method) {
    case http::verb::get:
    case http::verb::head:
    case http::verb::options:
    case http::verb::put:
    case http::verb::delete_:
    case http::verb::trace:
      return true;
    default:
      return false;
  }
}

void RewriteRequestForUpstream(http::request<http::string_body>& req, std::string_view client_ip,
                               std::string_view new_request_id) {
  StripHopByHop(req.base());
  const bool had_body_framing =
      req.count(http::field::transfer_encoding) > 0 || req.count(http::field::content_length) > 0;
  req.erase(http::field::transfer_encoding);
  req.erase(http::field::expect);  // the balancer answered any 100-continue itself
  if (had_body_framing || !req.body().empty()) req.content_length(req.body().size());
  req.version(11);

  auto xff = req.find("X-Forwarded-For");
  if (xff == req.end()) {
    req.set("X-Forwarded-For", client_ip);
  } else {
    std::string v(xff->value());
    v.append(", ").append(client_ip);
    req.set("X-Forwarded-For", v);
  }
  req.set("X-Forwarded-Proto", "http");
  if (req.find("X-Request-Id") == req.end()) req.set("X-Request-Id", new_request_id);
}

std::string NewRequestId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(32, '0');
  uint64_t a = rng(), b = rng();
  for (int i = 0; i < 16; ++i) {
    id[i] = kHex[(a >> (i * 4)) & 0xf];
    id[16 + i] = kHex[(b >> (i * 4)) & 0xf];
  }
  return id;
}

}  // namespace webtier::balancer
