// Request framing checks and header rewriting.
#include "webtier/balancer/http/http_rules.h"

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/rfc7230.hpp>

#include <algorithm>
#include <functional>

#include "webtier/common/http_syntax.h"

namespace webtier::balancer {

namespace http = boost::beast::http;
using http_syntax::EqualsIgnoreCase;
using http_syntax::IsToken;
using http_syntax::TrimOws;

namespace {

constexpr RequestCheck Fault(RequestFault fault, std::string_view why) { return RequestCheck{fault, why}; }

bool IsKnownCoding(std::string_view name) {
  for (std::string_view known : {"chunked", "gzip", "x-gzip", "deflate", "compress", "identity"}) {
    if (EqualsIgnoreCase(name, known)) return true;
  }
  return false;
}

std::string_view View(boost::beast::string_view s) { return {s.data(), s.size()}; }

// Calls `visit(element)` for every element (OWS trimmed) of all the `name`
// field lines of `fields`, read as one list in order, wherever the lines are
// among the others, until `visit` returns false.
template <typename Visit>
void ForEachElement(const http::fields& fields, http::field name, Visit visit) {
  bool more = true;
  for (const auto& f : fields) {
    if (f.name() != name) continue;
    http_syntax::ForEachListElement(View(f.value()), [&](std::string_view element) { return more = visit(element); });
    if (!more) return;
  }
}

// All the Transfer-Encoding field lines as one list: exactly `chunked`, else
// a refusal (501 when it names a coding not known at all).
RequestCheck CheckTransferEncoding(const http::request_header<>& h) {
  size_t elements = 0;
  bool only_chunked = true, unknown = false;
  ForEachElement(h, http::field::transfer_encoding, [&](std::string_view element) {
    ++elements;
    if (!EqualsIgnoreCase(element, "chunked")) only_chunked = false;
    const std::string_view coding = TrimOws(element.substr(0, element.find(';')));
    if (IsToken(coding) && !IsKnownCoding(coding)) unknown = true;
    return true;
  });
  if (unknown) return Fault(RequestFault::kUnknownCoding, "unsupported Transfer-Encoding");
  if (elements != 1 || !only_chunked) return Fault(RequestFault::kFraming, "Transfer-Encoding is not exactly chunked");
  return {};
}

// An absolute-form target split at the end of its authority.
struct AbsoluteTarget {
  std::string_view authority;
  std::string_view rest;  // path and query, possibly empty
};

bool IsAuthorityChar(char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return std::string_view("-._~!$&'()*+,;=:[]%").find(c) != std::string_view::npos;
}

// http[s]://authority[/path][?query], without userinfo or fragment.
std::optional<AbsoluteTarget> ParseAbsoluteForm(std::string_view target) {
  const size_t colon = target.find("://");
  if (colon == std::string_view::npos) return std::nullopt;
  const std::string_view scheme = target.substr(0, colon);
  if (!EqualsIgnoreCase(scheme, "http") && !EqualsIgnoreCase(scheme, "https")) return std::nullopt;
  target.remove_prefix(colon + 3);
  const size_t end = std::min(target.find_first_of("/?"), target.size());
  AbsoluteTarget t{target.substr(0, end), target.substr(end)};
  if (t.authority.empty() || !std::all_of(t.authority.begin(), t.authority.end(), IsAuthorityChar)) return std::nullopt;
  if (t.rest.find('#') != std::string_view::npos) return std::nullopt;
  return t;
}

bool IsHexDigit(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

bool IsRegNameChar(char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return std::string_view("-._~!$&'()*+,;=").find(c) != std::string_view::npos;
}

// reg-name with pct-encoded triplets (IPv4 addresses are reg-names too).
bool IsRegName(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      if (i + 2 >= s.size() || !IsHexDigit(s[i + 1]) || !IsHexDigit(s[i + 2])) return false;
      i += 2;
    } else if (!IsRegNameChar(s[i])) {
      return false;
    }
  }
  return true;
}

// "[" ( IPv6address / IPvFuture ) "]", checked for its alphabet and shape,
// not for every IPv6 grammar rule: what matters here is that nothing outside
// the brackets' character set gets through.
bool IsIpLiteral(std::string_view s) {
  if (s.size() < 3 || s.front() != '[' || s.back() != ']') return false;
  s = s.substr(1, s.size() - 2);
  if (s.front() == 'v' || s.front() == 'V') {  // IPvFuture: "v" HEXDIG+ "." ( unreserved / sub-delims / ":" )+
    const size_t dot = s.find('.');
    if (dot == std::string_view::npos || dot < 2 || dot + 1 == s.size()) return false;
    if (!std::all_of(s.begin() + 1, s.begin() + dot, IsHexDigit)) return false;
    return std::all_of(s.begin() + dot + 1, s.end(), [](char c) { return c == ':' || (c != '%' && IsRegNameChar(c)); });
  }
  size_t colons = 0;
  for (char c : s) {
    if (c == ':') ++colons;
    else if (!IsHexDigit(c) && c != '.') return false;
  }
  return colons >= 2 && colons <= 7;
}

RequestCheck CheckTarget(const http::request_header<>& h) {
  if (h.method() == http::verb::connect) return Fault(RequestFault::kConnect, "CONNECT is not supported");
  const std::string_view target = View(h.target());
  if (target.starts_with('/')) return {};
  if (target == "*") {
    if (h.method() == http::verb::options) return {};
    return Fault(RequestFault::kBadRequest, "asterisk-form target is for OPTIONS only");
  }
  if (const auto absolute = ParseAbsoluteForm(target)) {
    // Its authority becomes the Host (ToOriginForm): it must be one.
    if (!IsValidHost(absolute->authority)) return Fault(RequestFault::kBadRequest, "invalid authority in the target");
    return {};
  }
  return Fault(RequestFault::kBadRequest, "request-target is not origin-form or absolute-form");
}

}  // namespace

RequestCheck CheckRequestFraming(const http::request_header<>& h, size_t max_fields) {
  size_t content_lengths = 0, transfer_encodings = 0, hosts = 0, fields = 0;
  for (const auto& f : h) {
    if (++fields > max_fields && max_fields != 0) {
      return Fault(RequestFault::kTooManyFields, "too many header fields");
    }
    switch (f.name()) {
      case http::field::content_length:
        ++content_lengths;
        if (f.value().find(',') != boost::beast::string_view::npos)
          return Fault(RequestFault::kFraming, "Content-Length is a list");
        break;
      case http::field::transfer_encoding: ++transfer_encodings; break;
      case http::field::host: ++hosts; break;
      default: break;
    }
  }
  if (content_lengths > 1) return Fault(RequestFault::kFraming, "duplicate Content-Length");
  if (transfer_encodings > 0) {
    if (content_lengths > 0) return Fault(RequestFault::kFraming, "Content-Length with Transfer-Encoding");
    if (h.version() < 11) return Fault(RequestFault::kFraming, "Transfer-Encoding on HTTP/1.0");
    if (const RequestCheck te = CheckTransferEncoding(h); !te.ok()) return te;
  }
  if (h.version() >= 11 && hosts == 0) return Fault(RequestFault::kBadRequest, "missing Host");
  if (hosts > 1) return Fault(RequestFault::kBadRequest, "duplicate Host");
  if (hosts == 1 && !IsValidHost(View(h[http::field::host]))) return Fault(RequestFault::kBadRequest, "invalid Host");
  return CheckTarget(h);
}

bool IsValidHost(std::string_view host) {
  std::string_view name = host;
  // The port: the digits after the last colon outside an IP-literal.
  const size_t bracket = host.rfind(']');
  const size_t colon = host.rfind(':');
  if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket)) {
    const std::string_view port = host.substr(colon + 1);
    if (port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return false;
    name = host.substr(0, colon);
  }
  if (!name.empty() && name.front() == '[') return IsIpLiteral(name);
  return IsRegName(name);
}

std::string NormalizeHost(std::string_view host, bool tls) {
  std::string out(host);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  const size_t bracket = out.rfind(']');
  const size_t colon = out.rfind(':');
  std::string port;
  if (colon != std::string::npos && (bracket == std::string::npos || colon > bracket)) {
    port = out.substr(colon + 1);
    out.resize(colon);
    // "080" is port 80 too; an empty port is the default (RFC 3986 6.2.3).
    const size_t first = port.find_first_not_of('0');
    port = first == std::string::npos ? (port.empty() ? "" : "0") : port.substr(first);
    if (port == (tls ? "443" : "80")) port.clear();
  }
  while (out.size() > 1 && out.back() == '.') out.pop_back();
  if (!port.empty()) {
    out.push_back(':');
    out.append(port);
  }
  return out;
}

HostAllowList::HostAllowList(const std::vector<std::string>& entries) {
  for (const std::string& entry : entries) {
    if (entry.starts_with("*.")) suffixes_.push_back(NormalizeHost(std::string_view(entry).substr(1), false));
    else exact_.push_back(NormalizeHost(entry, false));
  }
}

bool HostAllowList::Admits(std::string_view host, bool tls) const {
  if (empty()) return true;
  const std::string normal = NormalizeHost(host, tls);
  // An entry without a port admits the name on the listener's default port;
  // one with a port admits only that port.
  for (const std::string& e : exact_) {
    if (normal == e) return true;
  }
  for (const std::string& suffix : suffixes_) {
    if (normal.size() > suffix.size() && normal.ends_with(suffix)) return true;
  }
  return false;
}

void ToOriginForm(http::request_header<>& h) {
  const auto absolute = ParseAbsoluteForm(View(h.target()));
  if (!absolute) return;
  // Host first: its value is copied out of the target before the target goes.
  h.set(http::field::host, boost::beast::string_view(absolute->authority.data(), absolute->authority.size()));
  std::string origin;
  if (absolute->rest.empty()) origin = h.method() == http::verb::options ? "*" : "/";
  else if (absolute->rest.starts_with('?')) origin = "/";
  origin.append(absolute->rest);
  h.target(origin);
}

size_t FieldCount(const http::fields& fields) {
  return static_cast<size_t>(std::distance(fields.begin(), fields.end()));
}

namespace {

// The fields RFC 9110 6.5.1 keeps out of a trailer section, beside framing,
// routing and hop-by-hop ones, and those the balancer sets on an answer.
bool BarredFromTrailers(const http::fields::value_type& f) {
  switch (f.name()) {
    case http::field::content_length:
    case http::field::transfer_encoding:
    case http::field::host:
    case http::field::age:
    case http::field::cache_control:
    case http::field::date:
    case http::field::expires:
    case http::field::location:
    case http::field::retry_after:
    case http::field::vary:
    case http::field::warning:
    case http::field::content_encoding:
    case http::field::content_location:
    case http::field::content_range:
    case http::field::content_type:
    case http::field::etag:
    case http::field::last_modified:
    case http::field::www_authenticate:
    case http::field::authentication_info:
    case http::field::set_cookie:
    case http::field::pragma:
      return true;
    default:
      break;
  }
  const boost::beast::string_view name = f.name_string();
  return EqualsIgnoreCase(name, "cache-status") || EqualsIgnoreCase(name, "x-request-id");
}

}  // namespace

void ForwardedTrailers(const http::fields& fields, const HeaderFields& header, std::vector<TrailerField>& out) {
  out.clear();
  if (FieldCount(fields) == header.size()) return;  // no trailer section
  const HopByHop hop(fields);
  for (const auto& f : fields) {
    if (header.Holds(f) || BarredFromTrailers(f) || hop.Drops(f)) continue;
    out.emplace_back(View(f.name_string()), View(f.value()));
  }
}

void AppendLastChunk(const std::vector<TrailerField>& trailers, std::string& out) {
  out.append("0\r\n");
  for (const auto& [name, value] : trailers) {
    out.append(name);
    out.append(": ");
    out.append(value);
    out.append("\r\n");
  }
  out.append("\r\n");
}

void HeaderFields::Snapshot(const http::fields& fields) {
  fields_.clear();
  // The address of the value_type part, as Holds() is given it (Beast's
  // element puts its list hooks before it).
  for (const http::fields::value_type& f : fields) fields_.push_back(&f);
  std::sort(fields_.begin(), fields_.end(), std::less<>());
}

bool HeaderFields::Holds(const http::fields::value_type& field) const {
  return std::binary_search(fields_.begin(), fields_.end(), static_cast<const void*>(&field), std::less<>());
}

void HeaderFields::DropTrailers(http::fields& fields) const {
  for (auto it = fields.begin(); it != fields.end();) {
    if (Holds(*it)) ++it;
    else it = fields.erase(it);
  }
}

namespace {

bool IsFramingField(boost::beast::string_view name) {
  return EqualsIgnoreCase(name, "content-length") || EqualsIgnoreCase(name, "transfer-encoding") || EqualsIgnoreCase(name, "host");
}

bool IsForwardedFor(const http::fields::value_type& f) {
  return EqualsIgnoreCase(f.name_string(), "x-forwarded-for");
}

void AppendField(std::string& out, boost::beast::string_view name, boost::beast::string_view value) {
  out.append(name.data(), name.size());
  out.append(": ", 2);
  out.append(value.data(), value.size());
  out.append("\r\n", 2);
}

// FNV-1a of the lower-case spelling: equal for names that differ in case only.
uint64_t NameHash(std::string_view name) {
  uint64_t h = 14695981039346656037ULL;
  for (char c : name) {
    // Case folded for letters; other bytes (field names are tokens) as they are.
    const unsigned char u = static_cast<unsigned char>(c);
    h ^= (u >= 'A' && u <= 'Z') ? u | 0x20u : u;
    h *= 1099511628211ULL;
  }
  return h;
}

}  // namespace

namespace {

uint64_t SlotHash(std::string_view name) { return NameHash(name) | 1; }  // never 0: 0 marks a free slot

}  // namespace

HopByHop::HopByHop(const http::fields& fields) {
  if (fields.find(http::field::connection) == fields.end()) return;
  // The usual Connection values name no field beyond the ones always dropped.
  bool names_fields = false;
  ForEachElement(fields, http::field::connection, [&](std::string_view token) {
    if (token.empty() || EqualsIgnoreCase(token, "keep-alive") || EqualsIgnoreCase(token, "upgrade")) return true;
    if (EqualsIgnoreCase(token, "close") && fields.find("close") == fields.end()) return true;
    names_fields = true;
    return false;
  });
  if (!names_fields) return;
  size_t count = 0;
  for (auto it = fields.begin(); it != fields.end(); ++it) ++count;
  size_t slots = 64;
  while (slots < 2 * count) slots *= 2;
  table_.resize(slots);
  const size_t mask = slots - 1;
  for (const auto& f : fields) {
    const std::string_view name = View(f.name_string());
    const uint64_t h = SlotHash(name);
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      if (table_[i].hash == 0) {
        table_[i] = {h, name, false};
        break;
      }
      if (table_[i].hash == h && EqualsIgnoreCase(table_[i].name, name)) break;  // the same name again
    }
  }
  // One probe or two per token, however many tokens.
  ForEachElement(fields, http::field::connection, [&](std::string_view token) {
    const uint64_t h = SlotHash(token);
    for (size_t i = h & mask; table_[i].hash != 0; i = (i + 1) & mask) {
      if (table_[i].hash == h && EqualsIgnoreCase(table_[i].name, token)) {
        table_[i].named = true;
        break;
      }
    }
    return true;
  });
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
  if (name.size() >= 6 && EqualsIgnoreCase(name.substr(0, 6), "proxy-")) return true;
  if (table_.empty() || IsFramingField(name)) return false;
  const uint64_t h = SlotHash(View(name));
  const size_t mask = table_.size() - 1;
  for (size_t i = h & mask; table_[i].hash != 0; i = (i + 1) & mask) {
    if (table_[i].hash == h && EqualsIgnoreCase(table_[i].name, View(name))) return table_[i].named;
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
  bool websocket = false;
  for (auto token : http::token_list{req[http::field::upgrade]}) {
    if (EqualsIgnoreCase(token, "websocket")) websocket = true;
  }
  if (!websocket) return false;
  for (auto token : http::token_list{req[http::field::connection]}) {
    if (EqualsIgnoreCase(token, "upgrade")) return true;
  }
  return false;
}

bool IsClientForwardingField(std::string_view name) {
  static constexpr std::string_view kFields[] = {
      "forwarded",       "x-forwarded-host",       "x-forwarded-proto", "x-forwarded-port",  "x-forwarded-scheme",
      "x-forwarded-server", "x-forwarded-ssl",     "x-real-ip",         "x-client-ip",       "true-client-ip",
      "x-original-url",  "x-rewrite-url",          "x-http-method-override", "x-http-method", "x-method-override",
      "front-end-https", "x-url-scheme"};
  // Most fields are none of these: the first letter settles it.
  if (name.empty()) return false;
  const char first = boost::beast::detail::ascii_tolower(name.front());
  if (first != 'f' && first != 'x' && first != 't') return false;
  for (std::string_view f : kFields) {
    if (EqualsIgnoreCase(name, f)) return true;
  }
  return false;
}

std::string_view SerializeUpstreamRequest(const http::request<http::string_body>& req, std::string_view client_ip,
                                          std::string_view new_request_id, std::string& out, const UpstreamBody& body,
                                          bool tls, std::string_view authority, bool replace_request_id,
                                          RequestTrace* trace) {
  out.clear();
  // A string kept by a keep-alive connection has its capacity already; a new
  // one (each HTTP/2 stream's) would otherwise grow by doubling, four times
  // for a browser's head.
  if (out.capacity() < 512) out.reserve(512);
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
  boost::beast::string_view traceparent;
  int traceparents = 0;
  bool tracestate = false;
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
    if (IsForwardedFor(f) || IsClientForwardingField(View(f.name_string()))) continue;
    const auto name = f.name_string();
    if (name.size() == 12 && EqualsIgnoreCase(name, "x-request-id")) {
      // One non-empty id goes on (the client's, unless replaced).
      if (replace_request_id || !request_id.empty() || f.value().empty()) continue;
      request_id = f.value();
    } else if (trace != nullptr && name.size() == 11 && EqualsIgnoreCase(name, "traceparent")) {
      traceparent = f.value();
      ++traceparents;
      continue;
    } else if (trace != nullptr && name.size() == 10 && EqualsIgnoreCase(name, "tracestate")) {
      tracestate = true;
      continue;  // after the traceparent, if that is valid
    }
    AppendField(out, name, f.value());
  }
  // An HTTP/1.0 request may come without Host; as HTTP/1.1 it needs one: the
  // authority its target URI was reconstructed with (RFC 9112 3.3), else
  // empty (3.2).
  boost::beast::string_view host_sent = req[http::field::host];
  if (!host) {
    AppendField(out, "Host", {authority.data(), authority.size()});
    host_sent = {authority.data(), authority.size()};
  }
  if (body.streamed && !body.length) {
    out.append("Transfer-Encoding: chunked\r\n");
  } else if (body.streamed || body_framing || !req.body().empty()) {
    out.append("Content-Length: ");
    out.append(std::to_string(body.streamed ? *body.length : req.body().size()));
    out.append("\r\n", 2);
  }
  if (IsUpgradeRequest(req)) {  // the one hop-by-hop request that goes on: the member may switch
    out.append("Connection: upgrade\r\nUpgrade: websocket\r\n");
  }
  out.append("X-Forwarded-For: ");
  for (const auto& f : req) {
    if (!IsForwardedFor(f) || f.value().empty()) continue;
    out.append(f.value().data(), f.value().size());
    out.append(", ", 2);
  }
  out.append(client_ip);
  out.append(tls ? "\r\nX-Forwarded-Proto: https\r\n" : "\r\nX-Forwarded-Proto: http\r\n");
  AppendField(out, "X-Forwarded-Host", host_sent);
  if (request_id.empty()) AppendField(out, "X-Request-Id", new_request_id);  // else it went out with the fields
  if (trace != nullptr) {
    const auto parent = traceparents == 1 ? ParseTraceparent(View(traceparent)) : std::nullopt;
    trace->continued = parent.has_value();
    if (parent) {
      parent->trace_id.copy(trace->trace_id, kTraceIdLength);
      parent->parent_id.copy(trace->parent_id, kSpanIdLength);
      trace->sampled = parent->sampled;
    }
    AppendTraceparent(*trace, out);
    if (parent && tracestate) {
      for (const auto& f : req) {
        if (f.name_string().size() == 10 && EqualsIgnoreCase(f.name_string(), "tracestate")) AppendField(out, f.name_string(), f.value());
      }
    }
  }
  out.append("\r\n", 2);
  return request_id.empty() ? new_request_id : std::string_view(request_id.data(), request_id.size());
}

ResponseFraming CheckResponseFraming(const http::response_header<>& res) {
  ResponseFraming r;
  bool te = false, content_length = false;
  for (const auto& f : res) {
    if (f.name() == http::field::transfer_encoding) te = true;
    else if (f.name() == http::field::content_length) content_length = true;
  }
  if (!te) return r;
  if (content_length) {
    r.why = "member sent Transfer-Encoding with Content-Length";
    return r;
  }
  // The elements of every line in order; chunked must be the last, once.
  bool chunked_seen = false;
  ForEachElement(res, http::field::transfer_encoding, [&](std::string_view element) {
    if (chunked_seen || !IsToken(element)) {
      r.why = chunked_seen ? "member sent a transfer coding after chunked" : "member sent a malformed Transfer-Encoding";
      return false;
    }
    if (EqualsIgnoreCase(element, "chunked")) {
      chunked_seen = true;
    } else {
      if (!r.codings.empty()) r.codings.append(", ");
      r.codings.append(element);
    }
    return true;
  });
  if (!r.ok()) return r;
  if (!chunked_seen) r.why = "member sent a Transfer-Encoding that does not end in chunked";
  return r;
}

void SerializeInterimHead(const http::response_header<>& res, std::string& out) {
  out.clear();
  out.append("HTTP/1.1 ", 9);
  const unsigned code = res.result_int();
  out.append(std::to_string(code));
  out.push_back(' ');
  out.append(res.reason().data(), res.reason().size());
  out.append("\r\n", 2);
  const HopByHop hop(res);
  for (const auto& f : res) {
    if (hop.Drops(f) || f.name() == http::field::content_length || f.name() == http::field::transfer_encoding)
      continue;
    AppendField(out, f.name_string(), f.value());
  }
  out.append("\r\n", 2);
}

void SerializeResponseHead(const http::response_header<>& res, unsigned client_version, bool keep_alive,
                           BodyFraming framing, std::string_view request_id, std::string& out,
                           std::string_view codings) {
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
    if (!has_request_id && EqualsIgnoreCase(f.name_string(), "x-request-id")) has_request_id = true;
    AppendField(out, f.name_string(), f.value());
  }
  if (framing == BodyFraming::kChunked) {
    out.append("Transfer-Encoding: ");
    if (!codings.empty()) {
      out.append(codings);
      out.append(", ");
    }
    out.append("chunked\r\n");
  }
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

namespace {

class BodyLimitCategory : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "webtier.body_limit"; }
  std::string message(int ev) const override {
    switch (static_cast<BodyLimit>(ev)) {
      case BodyLimit::kChunkLineTooLong: return "chunk-size line too long";
      case BodyLimit::kTrailerTooLarge: return "trailer section too large";
      case BodyLimit::kBodyTimeout: return "request body not complete in time";
    }
    return "body limit";
  }
};

}  // namespace

boost::system::error_code MakeErrorCode(BodyLimit limit) {
  static const BodyLimitCategory category;
  return {static_cast<int>(limit), category};
}

boost::system::error_code PendingBodyError(std::string_view pending, size_t trailer_limit) {
  if (pending.size() <= kMaxChunkLineBytes) return {};
  if (pending.starts_with("\r\n")) pending.remove_prefix(2);  // the end of the chunk before
  const size_t eol = pending.find("\r\n");
  if (eol == std::string_view::npos || eol > kMaxChunkLineBytes) return MakeErrorCode(BodyLimit::kChunkLineTooLong);
  if (pending.size() - eol - 2 > trailer_limit) return MakeErrorCode(BodyLimit::kTrailerTooLarge);
  return {};
}

void WriteRequestId(char (&out)[kRequestIdLength]) { WriteRandomHex(out, kRequestIdLength); }

}  // namespace webtier::balancer
