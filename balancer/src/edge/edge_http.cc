// The edge cache's HTTP rules (see edge_http.h).
#include "edge/edge_http.h"

#include <algorithm>

#include <boost/beast/http/status.hpp>

#include "webtier/cache/cache_control.h"
#include "webtier/cache/cache_key.h"
#include "webtier/cache/conditional.h"
#include "webtier/cache/freshness.h"
#include "webtier/cache/request_target.h"
#include "webtier/common/http_syntax.h"

namespace webtier::balancer::edge {

namespace {

using http_syntax::EqualsIgnoreCase;

std::string_view View(boost::beast::string_view s) { return {s.data(), s.size()}; }

bool Has(const http::request<http::string_body>& req, http::field field) { return req.find(field) != req.end(); }

// Every line of `field` joined with ", ".
std::string Joined(const http::request<http::string_body>& req, http::field field) {
  std::string out;
  for (auto [it, end] = req.equal_range(field); it != end; ++it) {
    if (!out.empty()) out += ", ";
    out += View(it->value());
  }
  return out;
}

// "path[?normalised query]" of an origin-form target; empty when it is not one.
std::string UrlOf(std::string_view target) {
  if (target.empty() || target[0] != '/') return {};
  const size_t q = target.find('?');
  std::string url(target.substr(0, q));
  if (q != std::string_view::npos) {
    const std::string query = cache::NormalizeQuery(target.substr(q + 1));
    if (!query.empty()) {
      url += '?';
      url += query;
    }
  }
  return url;
}

// Fields a stored answer never repeats as they came: recomputed (Age,
// Content-Length) or the balancer's per answer (X-Cache, X-Request-Id).
bool Recomputed(std::string_view name) {
  return EqualsIgnoreCase(name, "age") || EqualsIgnoreCase(name, "content-length") ||
         EqualsIgnoreCase(name, "x-cache") || EqualsIgnoreCase(name, "x-request-id");
}

void AppendLine(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.append(": ", 2);
  out.append(value);
  out.append("\r\n", 2);
}

// The client says it has `object` (a 200): it gets a 304.
bool ClientHasIt(const EdgeObject& object, const http::request<http::string_body>& req) {
  if (object.response.status != 200) return false;
  const bool inm = Has(req, http::field::if_none_match);
  if (!inm && !Has(req, http::field::if_modified_since)) return false;
  cache::Request asked;
  if (inm) asked.headers.emplace_back("If-None-Match", Joined(req, http::field::if_none_match));
  else asked.headers.emplace_back("If-Modified-Since", View(req[http::field::if_modified_since]));
  return cache::ClientHasIt(asked, object.response);
}

int64_t Seconds(int64_t ms) { return ms <= 0 ? 0 : ms / 1000; }

}  // namespace

EdgeRequest ClassifyRequest(const http::request<http::string_body>& req, bool tls) {
  EdgeRequest r;
  const http::verb method = req.method();
  const std::string_view target = View(req.target());
  r.url = UrlOf(target);
  if (method != http::verb::get && method != http::verb::head) {
    r.unsafe = method != http::verb::options && method != http::verb::trace && !r.url.empty();
    return r;
  }
  r.head = method == http::verb::head;
  if (r.url.empty() || !cache::AcceptableTarget(View(req.method_string()), target)) return r;
  const std::string_view scheme = tls ? "https" : "http";
  const auto host = req.find(http::field::host);
  if (host == req.end()) return r;
  const std::optional<std::string> normalised = cache::NormalizeHost(View(host->value()), scheme);
  if (!normalised || normalised->empty()) return r;
  // The tier decides what these mean for each client.
  if (Has(req, http::field::authorization) || Has(req, http::field::cookie) || Has(req, http::field::range) ||
      Has(req, http::field::if_range) || Has(req, http::field::if_match) ||
      Has(req, http::field::if_unmodified_since) || Has(req, http::field::upgrade) ||
      Has(req, http::field::content_length) || Has(req, http::field::transfer_encoding) || !req.body().empty()) {
    return r;
  }
  r.site = cache::SiteOf(scheme, *normalised);
  bool ask_tier = false;
  if (Has(req, http::field::cache_control)) {
    const cache::CacheControl cc = cache::ParseCacheControl(Joined(req, http::field::cache_control));
    if (cc.no_store) return r;
    ask_tier = cc.no_cache;
    r.max_age_s = cc.max_age;
    r.min_fresh_s = cc.min_fresh;
  } else if (Has(req, http::field::pragma)) {
    ask_tier = Joined(req, http::field::pragma).find("no-cache") != std::string::npos;
  }
  r.store = !r.head;
  r.lookup = !ask_tier;
  return r;
}

std::string SelectingFields(const http::request<http::string_body>& req, const cache::Vary& vary) {
  cache::Headers named;
  for (const std::string& name : vary.names) {
    for (auto [it, end] = req.equal_range(name); it != end; ++it) named.emplace_back(name, View(it->value()));
  }
  return cache::SelectingFields(vary, named);
}

bool Acceptable(const EdgeRequest& request, const EdgeObject& object, int64_t now_ms) {
  if (request.max_age_s && Seconds(object.AgeMs(now_ms)) > *request.max_age_s) return false;
  if (request.min_fresh_s && (object.FreshUntilMs() - now_ms) / 1000 < *request.min_fresh_s) return false;
  return true;
}

std::shared_ptr<EdgeObject> ObjectFor(const http::response_header<>& head, std::optional<uint64_t> length,
                                      const EdgeRequest& request, const http::request<http::string_body>& req,
                                      int64_t request_ms, int64_t response_ms, uint64_t max_object_bytes) {
  if (!request.store || !length || *length > max_object_bytes) return nullptr;
  http_syntax::ConnectionOptions connection;
  for (auto [it, end] = head.equal_range(http::field::connection); it != end; ++it) connection.Add(View(it->value()));
  cache::Response response;
  response.status = head.result_int();
  for (const auto& f : head) {
    const std::string_view name = View(f.name_string());
    if (http_syntax::IsHopByHopField(name) || connection.Lists(name)) continue;
    if (EqualsIgnoreCase(name, "set-cookie")) return nullptr;  // one client's state: never shared
    response.headers.emplace_back(http_syntax::LowerCopy(name), View(f.value()));
  }
  const cache::Vary vary = cache::ParseVary(response.headers);
  if (vary.star) return nullptr;
  cache::FreshnessOptions options;
  options.stale_if_error_s = 0;
  const cache::Freshness fresh = cache::Assess(response, request_ms, response_ms, options);
  if (!fresh.storable || fresh.always_revalidate || !fresh.drop_fields.empty() ||
      fresh.lifetime_ms <= fresh.initial_age_ms) {
    return nullptr;
  }
  auto object = std::make_shared<EdgeObject>();
  // What is kept: the end-to-end fields but those made per answer; the
  // HTTP/1.1 lines keep the member's spelling, the list is lower case (HTTP/2).
  std::erase_if(response.headers, [](const auto& f) { return Recomputed(f.first); });
  for (const auto& f : head) {
    const std::string_view name = View(f.name_string());
    if (http_syntax::IsHopByHopField(name) || connection.Lists(name) || Recomputed(name)) continue;
    AppendLine(object->head_fields, name, View(f.value()));
  }
  object->response = std::move(response);
  object->response.body.reserve(static_cast<size_t>(*length));
  object->site = request.site;
  object->url = request.url;
  object->vary = vary;
  if (!vary.empty()) object->variant = SelectingFields(req, vary);
  object->response_ms = response_ms;
  object->initial_age_ms = fresh.initial_age_ms;
  object->lifetime_ms = fresh.lifetime_ms;
  return object;
}

std::vector<std::string> InvalidatedBy(const http::response_header<>& head, const EdgeRequest& request) {
  std::vector<std::string> urls;
  for (http::field field : {http::field::location, http::field::content_location}) {
    const auto it = head.find(field);
    if (it == head.end()) continue;
    std::string_view value = View(it->value());
    for (std::string_view scheme : {"http://", "https://"}) {
      if (value.size() > scheme.size() && EqualsIgnoreCase(value.substr(0, scheme.size()), scheme)) {
        // Absolute: only a path on the request's own host (any scheme) is this origin's.
        const std::string_view rest = value.substr(scheme.size());
        const size_t slash = rest.find('/');
        const std::string_view host = rest.substr(0, slash);
        const size_t sep = request.site.find("://");
        const std::string_view own = sep == std::string::npos ? std::string_view() : std::string_view(request.site).substr(sep + 3);
        value = slash != std::string_view::npos && !own.empty() && EqualsIgnoreCase(host, own) ? rest.substr(slash)
                                                                                               : std::string_view();
        break;
      }
    }
    if (value.size() >= 2 && value[0] == '/' && value[1] == '/') continue;  // scheme-relative: another authority
    if (std::string url = UrlOf(value); !url.empty() && url != request.url) urls.push_back(std::move(url));
  }
  return urls;
}

int SerializeHit(const EdgeObject& object, const http::request<http::string_body>& req, int64_t now_ms,
                 bool keep_alive, std::string_view request_id, std::string& out, bool* with_body) {
  const bool not_modified = ClientHasIt(object, req);
  const int status = not_modified ? 304 : object.response.status;
  const bool http11 = req.version() >= 11;
  out.clear();
  out.append(http11 ? "HTTP/1.1 " : "HTTP/1.0 ");
  out.append(std::to_string(status));
  out.push_back(' ');
  out.append(View(http::obsolete_reason(static_cast<http::status>(status))));
  out.append("\r\n", 2);
  if (not_modified) {
    for (const auto& [name, value] : cache::NotModifiedFor(object.response).headers) AppendLine(out, name, value);
  } else {
    out.append(object.head_fields);
  }
  AppendLine(out, "Age", std::to_string(Seconds(object.AgeMs(now_ms))));
  out.append("Cache-Status: webtier-edge; hit; ttl=");
  out.append(std::to_string((object.FreshUntilMs() - now_ms) / 1000));
  out.append("\r\nX-Cache: HIT\r\n");
  if (!request_id.empty()) AppendLine(out, "X-Request-Id", request_id);
  const bool bodyless = not_modified || status == 204 || (status >= 100 && status < 200);
  if (!bodyless) AppendLine(out, "Content-Length", std::to_string(object.response.body.size()));
  if (http11) {
    if (!keep_alive) out.append("Connection: close\r\n");
  } else if (keep_alive) {
    out.append("Connection: keep-alive\r\n");
  }
  out.append("\r\n", 2);
  *with_body = !bodyless && req.method() != http::verb::head && !object.response.body.empty();
  return status;
}

int HitFields(const EdgeObject& object, const http::request<http::string_body>& req, int64_t now_ms,
              std::string_view request_id, std::vector<H2Field>& fields, std::string& storage, bool* with_body) {
  const bool not_modified = ClientHasIt(object, req);
  const int status = not_modified ? 304 : object.response.status;
  const bool bodyless = not_modified || status == 204;
  // The values made for this answer, laid out before any view of them is taken.
  storage = std::to_string(Seconds(object.AgeMs(now_ms)));
  const size_t age_end = storage.size();
  storage += "webtier-edge; hit; ttl=";
  storage += std::to_string((object.FreshUntilMs() - now_ms) / 1000);
  const size_t status_end = storage.size();
  storage += std::to_string(object.response.body.size());
  const std::string_view made(storage);
  fields.clear();
  if (not_modified) {
    static thread_local cache::Response kept;  // the 304's fields live until the codec has copied them
    kept = cache::NotModifiedFor(object.response);
    for (const auto& [name, value] : kept.headers) fields.emplace_back(http_syntax::LowerCopy(name), value);
  } else {
    for (const auto& [name, value] : object.response.headers) fields.emplace_back(name, value);
  }
  fields.emplace_back("age", made.substr(0, age_end));
  fields.emplace_back("cache-status", made.substr(age_end, status_end - age_end));
  fields.emplace_back("x-cache", "HIT");
  if (!request_id.empty()) fields.emplace_back("x-request-id", request_id);
  if (!bodyless) fields.emplace_back("content-length", made.substr(status_end));
  *with_body = !bodyless && req.method() != http::verb::head && !object.response.body.empty();
  return status;
}

std::string UrlOfTarget(std::string_view target) { return UrlOf(target); }

std::string UrlOfCacheKey(std::string_view key) {
  constexpr std::string_view kPrefix = "webtier:v";
  if (key.substr(0, kPrefix.size()) != kPrefix) return {};
  key.remove_prefix(kPrefix.size());
  const size_t colon = key.find(':');
  if (colon == 0 || colon == std::string_view::npos ||
      !std::all_of(key.begin(), key.begin() + colon, [](char c) { return c >= '0' && c <= '9'; })) {
    return {};
  }
  key.remove_prefix(colon + 1);
  if (const size_t sep = key.find("://"); sep != std::string_view::npos && key.substr(0, 1) != "/") {
    const size_t slash = key.find('/', sep + 3);
    if (slash == std::string_view::npos) return {};
    key.remove_prefix(slash);
  }
  if (key.empty() || key[0] != '/') return {};
  return std::string(key.substr(0, key.find('#')));
}

}  // namespace webtier::balancer::edge
