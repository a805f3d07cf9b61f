// The HTTP rules for an HTTP/2 stream (see h2_rules.h).
#include "webtier/balancer/http/h2_rules.h"

#include "webtier/balancer/http/http_rules.h"
#include "webtier/common/http_syntax.h"

namespace webtier::balancer {

namespace http = boost::beast::http;

namespace {

// RFC 9113 6.5.2: a field's share of the header list size.
constexpr size_t kFieldOverhead = 32;

std::string_view View(boost::beast::string_view s) { return {s.data(), s.size()}; }

}  // namespace

void H2RequestHead::Add(std::string_view name, std::string_view value) {
  bytes_ += name.size() + value.size() + kFieldOverhead;
  if (too_large_ || too_many_) return;
  if (bytes_ > max_bytes_) {
    too_large_ = true;
  } else if (!name.empty() && name[0] == ':') {
    if (name == ":method") method_ = value;
    else if (name == ":scheme") scheme_ = value;
    else if (name == ":authority") authority_ = value;
    else if (name == ":path") path_ = value;
    else if (name == ":protocol") protocol_ = value;
    // (nghttp2 lets no other pseudo-header through; they are not counted
    // as fields, as an HTTP/1.1 request line is not.)
    return;
  } else if (name == "cookie") {
    if (cookies_++ != 0) cookie_.append("; ");
    cookie_.append(value);
  } else {
    fields_.push_back({std::string(name), std::string(value)});
  }
  // All the crumbs of a cookie count as the one field they become.
  if (max_fields_ != 0 && fields_.size() + (cookies_ != 0 ? 1 : 0) > max_fields_) too_many_ = true;
  if (too_large_ || too_many_) {
    fields_.clear();
    cookie_.clear();
  }
}

std::optional<RequestError> H2RequestHead::Build(http::request<http::string_body>& req) {
  if (too_large_) return RequestError{431, Rejection::kHeaderTooLarge, "request header fields too large"};
  if (too_many_) return RequestError{431, Rejection::kTooManyFields, "too many header fields"};
  const bool websocket = extended_connect() && http_syntax::EqualsIgnoreCase(protocol_, "websocket");
  if (method_ == "CONNECT" && protocol_.empty())
    return RequestError{405, Rejection::kBadRequest, "CONNECT is not supported"};
  if (method_ == "CONNECT" && !websocket) return RequestError{400, Rejection::kBadRequest, "unsupported :protocol"};
  if (scheme_ != "http" && scheme_ != "https")
    return RequestError{400, Rejection::kBadRequest, "unsupported :scheme"};
  if (websocket) req.method(http::verb::get);
  else req.method_string(method_);
  req.target(path_);
  req.version(11);
  std::string_view host;
  bool hosts = false;
  for (const Field& f : fields_) {
    if (f.name != "host") continue;
    if (hosts) return RequestError{400, Rejection::kBadRequest, "duplicate Host"};
    hosts = true;
    host = f.value;
  }
  if (!authority_.empty()) {
    if (hosts && !http_syntax::EqualsIgnoreCase(host, authority_))
      return RequestError{400, Rejection::kBadRequest, "Host differs from :authority"};
    req.set(http::field::host, authority_);
  } else if (!hosts) {
    return RequestError{400, Rejection::kBadRequest, "missing :authority"};
  }
  for (Field& f : fields_) {
    if (f.name == "host") {
      if (authority_.empty()) req.set(http::field::host, f.value);
      continue;
    }
    req.insert(f.name, f.value);
  }
  if (cookies_ != 0) req.insert(http::field::cookie, cookie_);
  if (websocket) {  // (nghttp2 let no Connection or Upgrade field through)
    req.set(http::field::connection, "Upgrade");
    req.set(http::field::upgrade, "websocket");
  }
  return std::nullopt;
}

void H2ResponseFields(const http::response_header<>& res, bool keep_length, std::string_view request_id,
                      std::vector<H2Field>& out) {
  out.clear();
  const HopByHop hop(res);
  bool has_request_id = false;
  for (const auto& f : res) {
    if (hop.Drops(f)) continue;
    switch (f.name()) {
      case http::field::transfer_encoding:
      case http::field::connection:
      case http::field::keep_alive:
      case http::field::proxy_connection:
      case http::field::te:
      case http::field::trailer:
      case http::field::upgrade: continue;
      case http::field::content_length:
        if (!keep_length) continue;
        break;
      default: break;
    }
    std::string name = http_syntax::LowerCopy(View(f.name_string()));
    if (!has_request_id && name == "x-request-id") has_request_id = true;
    out.emplace_back(std::move(name), View(f.value()));
  }
  if (!has_request_id && !request_id.empty()) out.emplace_back("x-request-id", request_id);
}

}  // namespace webtier::balancer
