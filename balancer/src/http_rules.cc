// Request framing checks and header rewriting.
#include "webtier/balancer/http_rules.h"

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/rfc7230.hpp>

#include <random>

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

namespace {

bool IsFramingField(boost::beast::string_view name) {
  return iequals(name, "content-length") || iequals(name, "transfer-encoding") || iequals(name, "host");
}

bool IsForwardedFor(const http::fields::value_type& f) {
  return iequals(f.name_string(), "x-forwarded-for");
}

void AppendField(std::string& out, boost::beast::string_view name, boost::beast::string_view value) {
  out.append(name.data(), name.size());
  out.append(": ", 2);
  out.append(value.data(), value.size());
  out.append("\r\n", 2);
}

}  // namespace

HopByHop::HopByHop(const http::fields& fields) {
  auto it = fields.find(http::field::connection);
  if (it != fields.end()) connection_ = it->value();
}

bool HopByHop::Drops(const http::fields::value_type& f) const {
  switch (f.name()) {
    case http::field::connection:
    case http::field::keep_alive:
    case http::field::te:
    case http::field::trailer:
    case http::field::upgrade:
    case http::field::proxy_authenticate:
    case http::field::proxy_authorization:
    case http::field::proxy_connection:
      return true;
    default:
      break;
  }
  const boost::beast::string_view name = f.name_string();
  if (name.size() >= 6 && iequals(name.substr(0, 6), "proxy-")) return true;
  if (connection_.empty() || IsFramingField(name)) return false;
  for (auto token : http::token_list{connection_}) {
    if (iequals(token, name)) return true;
  }
  return false;
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

bool IsUpgradeRequest(const http::request<http::string_body>& req) {
  if (req.version() != 11 || req.method() != http::verb::get || !req.body().empty()) return false;
  if (req.count(http::field::content_length) != 0 || req.count(http::field::transfer_encoding) != 0) return false;
  if (req[http::field::upgrade].empty()) return false;
  for (auto token : http::token_list{req[http::field::connection]}) {
    if (iequals(token, "upgrade")) return true;
  }
  return false;
}

std::string_view SerializeUpstreamRequest(const http::request<http::string_body>& req, std::string_view client_ip,
                                          std::string_view new_request_id, std::string& out, const UpstreamBody& body) {
  out.clear();
  const auto method = req.method_string();
  const auto target = req.target();
  out.append(method.data(), method.size());
  out.push_back(' ');
  out.append(target.data(), target.size());
  out.append(" HTTP/1.1\r\n", 11);

  const HopByHop hop(req.base());
  bool body_framing = false;
  bool host = false;
  boost::beast::string_view request_id;
  for (const auto& f : req) {
    if (hop.Drops(f)) continue;
    switch (f.name()) {
      case http::field::host:
        host = true;
        break;
      case http::field::transfer_encoding:
      case http::field::content_length:
        body_framing = true;
        continue;
      case http::field::expect:
        continue;
      default:
        break;
    }
    if (IsForwardedFor(f) || iequals(f.name_string(), "x-forwarded-proto")) continue;
    if (iequals(f.name_string(), "x-request-id")) {
      if (!request_id.empty() || f.value().empty()) continue;  // one, non-empty id goes on
      request_id = f.value();
    }
    AppendField(out, f.name_string(), f.value());
  }
  // An HTTP/1.0 request may come without Host; as HTTP/1.1 it needs one, and
  // with no authority to name, RFC 9112 (3.2) says send it empty.
  if (!host) out.append("Host: \r\n");
  if (body.streamed && !body.length) {
    out.append("Transfer-Encoding: chunked\r\n");
  } else if (body.streamed || body_framing || !req.body().empty()) {
    out.append("Content-Length: ");
    out.append(std::to_string(body.streamed ? *body.length : req.body().size()));
    out.append("\r\n", 2);
  }
  if (IsUpgradeRequest(req)) {  // the one hop-by-hop request that goes on: the member may switch
    out.append("Connection: upgrade\r\n");
    AppendField(out, "Upgrade", req[http::field::upgrade]);
  }
  out.append("X-Forwarded-For: ");
  for (const auto& f : req) {
    if (!IsForwardedFor(f) || f.value().empty()) continue;
    out.append(f.value().data(), f.value().size());
    out.append(", ", 2);
  }
  out.append(client_ip);
  out.append("\r\nX-Forwarded-Proto: http\r\n");
  if (request_id.empty()) AppendField(out, "X-Request-Id", new_request_id);  // else it went out with the fields
  out.append("\r\n", 2);
  return request_id.empty() ? new_request_id : std::string_view(request_id.data(), request_id.size());
}

void SerializeResponseHead(const http::response_header<>& res, unsigned client_version, bool keep_alive,
                           BodyFraming framing, std::string_view request_id, std::string& out) {
  out.clear();
  out.append(client_version >= 11 ? "HTTP/1.1 " : "HTTP/1.0 ", 9);
  const unsigned code = res.result_int();
  char digits[3] = {static_cast<char>('0' + code / 100 % 10), static_cast<char>('0' + code / 10 % 10),
                    static_cast<char>('0' + code % 10)};
  out.append(digits, 3);
  out.push_back(' ');
  const auto reason = res.reason();
  out.append(reason.data(), reason.size());
  out.append("\r\n", 2);

  const HopByHop hop(res);
  bool has_request_id = false;
  for (const auto& f : res) {
    if (hop.Drops(f)) continue;
    if (framing != BodyFraming::kAsIs &&
        (f.name() == http::field::content_length || f.name() == http::field::transfer_encoding))
      continue;
    if (!has_request_id && iequals(f.name_string(), "x-request-id")) has_request_id = true;
    AppendField(out, f.name_string(), f.value());
  }
  if (framing == BodyFraming::kChunked) out.append("Transfer-Encoding: chunked\r\n");
  if (code == 101) {  // the tunnel's head: the switch goes through to the client
    out.append("Connection: upgrade\r\n");
    AppendField(out, "Upgrade", res[http::field::upgrade]);
  } else if (client_version >= 11) {
    if (!keep_alive) out.append("Connection: close\r\n");
  } else if (keep_alive) {
    out.append("Connection: keep-alive\r\n");
  }
  if (!has_request_id && !request_id.empty()) AppendField(out, "X-Request-Id", request_id);
  out.append("\r\n", 2);
}

void WriteRequestId(char (&out)[kRequestIdLength]) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  const uint64_t a = rng(), b = rng();
  for (int i = 0; i < 16; ++i) {
    out[i] = kHex[(a >> (i * 4)) & 0xf];
    out[16 + i] = kHex[(b >> (i * 4)) & 0xf];
  }
}

}  // namespace webtier::balancer
