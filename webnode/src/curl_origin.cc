// cache::Origin with libcurl. libcurl error codes are translated into Status here.
#include "webtier/webnode/curl_origin.h"

#include <curl/curl.h>

#include <mutex>

#include "webtier/common/log.h"
#include "webtier/webnode/origin_fields.h"

namespace webtier::cache {
namespace {

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// The one translation of a libcurl result into Status.
Status FromCurl(CURLcode code, const char* errbuf) {
  std::string msg = std::string("origin: ") + (errbuf[0] != '\0' ? errbuf : curl_easy_strerror(code));
  switch (code) {
    case CURLE_OK:
      return Status::Ok();
    case CURLE_OPERATION_TIMEDOUT:
      return Status(ErrorCode::kTimeout, msg);
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
      return Status(ErrorCode::kUnavailable, msg);
    case CURLE_URL_MALFORMAT:
      return Status(ErrorCode::kInvalidArgument, msg);
    default:
      return Status(ErrorCode::kInternal, msg);
  }
}

CurlOriginOptions WithoutTrailingSlash(CurlOriginOptions options) {
  while (!options.base_url.empty() && options.base_url.back() == '/') options.base_url.pop_back();
  return options;
}

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

// The response being received, and what its Connection lines say.
struct HeaderSink {
  Response* response;
  http_syntax::ConnectionOptions connection;
};

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* sink = static_cast<HeaderSink*>(user);
  Response* response = sink->response;
  std::string_view line(data, size * n);
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
  if (line.substr(0, 5) == "HTTP/") {
    response->headers.clear();  // a new response (after 100 Continue): start over
    sink->connection = {};
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) return size * n;
  std::string_view name = line.substr(0, colon);
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  if (EqualsIgnoreCase(name, "Connection")) sink->connection.Add(value);
  response->headers.emplace_back(std::string(name), std::string(value));  // KeepEndToEnd sorts them out
  return size * n;
}

}  // namespace

struct CurlOrigin::Base {
  CURLU* url = nullptr;
  std::string path_prefix;  // the base URL's path, without a trailing '/'
  ~Base() {
    if (url != nullptr) curl_url_cleanup(url);
  }
};

struct CurlOrigin::Handle {
  Handle() : curl(curl_easy_init()) {}
  ~Handle() {
    if (curl != nullptr) curl_easy_cleanup(curl);
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  CURL* curl;
};

CurlOrigin::CurlOrigin(CurlOriginOptions options)
    : options_(WithoutTrailingSlash(std::move(options))), base_(std::make_unique<Base>()) {
  GlobalInit();
  // Scheme, host, port and path prefix are parsed once; every request URL is
  // this one with its path and query set as parts (never by pasting strings,
  // so no request target can be read as userinfo, a host or a port).
  base_->url = curl_url();
  char* path = nullptr;
  if (base_->url == nullptr || curl_url_set(base_->url, CURLUPART_URL, options_.base_url.c_str(), 0) != CURLUE_OK ||
      curl_url_get(base_->url, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
    log::Error("origin", "invalid --origin URL").kv("url", options_.base_url);
    if (base_->url != nullptr) curl_url_cleanup(base_->url);
    base_->url = nullptr;
  } else {
    base_->path_prefix = path;
    while (!base_->path_prefix.empty() && base_->path_prefix.back() == '/') base_->path_prefix.pop_back();
    curl_url_set(base_->url, CURLUPART_QUERY, nullptr, 0);
    curl_url_set(base_->url, CURLUPART_FRAGMENT, nullptr, 0);
  }
  curl_free(path);
}

Status CurlOrigin::BuildUrl(const Request& request, CURLU** out) const {
  *out = nullptr;
  if (base_->url == nullptr) return Status(ErrorCode::kInvalidArgument, "origin: invalid base URL");
  if (request.path.empty() || request.path.front() != '/') {
    return Status(ErrorCode::kInvalidArgument, "origin: request path is not absolute");
  }
  CURLU* u = curl_url_dup(base_->url);
  if (u == nullptr) return Status(ErrorCode::kInternal, "origin: out of memory");
  const std::string path = base_->path_prefix + request.path;
  if (curl_url_set(u, CURLUPART_PATH, path.c_str(), 0) != CURLUE_OK ||
      (!request.query.empty() && curl_url_set(u, CURLUPART_QUERY, request.query.c_str(), 0) != CURLUE_OK)) {
    curl_url_cleanup(u);
    return Status(ErrorCode::kInvalidArgument, "origin: request path or query not usable in a URL");
  }
  *out = u;
  return Status::Ok();
}

CurlOrigin::~CurlOrigin() = default;

std::unique_ptr<CurlOrigin::Handle> CurlOrigin::Take() {
  {
    MutexLock lock(&mu_);
    if (!idle_.empty()) {
      auto h = std::move(idle_.back());
      idle_.pop_back();
      return h;
    }
  }
  return std::make_unique<Handle>();
}

void CurlOrigin::Give(std::unique_ptr<Handle> handle) {
  MutexLock lock(&mu_);
  if (idle_.size() < options_.max_idle_handles) idle_.push_back(std::move(handle));
}

Status CurlOrigin::Fetch(const Request& request, Response* response) {
  std::unique_ptr<Handle> h = Take();
  if (h->curl == nullptr) return Status(ErrorCode::kInternal, "origin: curl_easy_init failed");
  CURL* c = h->curl;
  curl_easy_reset(c);  // options only: live connections stay in the handle's pool

  CURLU* url = nullptr;
  if (Status s = BuildUrl(request, &url); !s.ok()) {
    Give(std::move(h));
    return s;
  }
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(c, CURLOPT_CURLU, url);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);  // timeouts without SIGALRM: we are multi-threaded
  curl_easy_setopt(c, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.connect_timeout.count()));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.timeout.count()));
  curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);

  if (request.method == "HEAD") {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (request.method != "GET") {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    if (!request.body.empty() || request.method == "POST" || request.method == "PUT" || request.method == "PATCH") {
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, request.body.data());
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
    }
  }

  // Bodies pass through as the origin encoded them (Content-Encoding is the
  // client's business); chunked framing is still undone.
  curl_easy_setopt(c, CURLOPT_HTTP_CONTENT_DECODING, 0L);

  curl_slist* headers = nullptr;
  ForEachFieldToOrigin(request.headers, !options_.host.empty(), [&](const std::string& name, const std::string& value) {
    headers = curl_slist_append(headers, (name + ": " + value).c_str());
    return true;
  });
  if (!options_.host.empty()) headers = curl_slist_append(headers, ("Host: " + options_.host).c_str());
  headers = curl_slist_append(headers, "Expect:");
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);

  Response out;
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &out.body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, OnHeader);
  HeaderSink sink{&out, {}};
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &sink);

  CURLcode code = curl_easy_perform(c);
  curl_slist_free_all(headers);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, nullptr);
  curl_easy_setopt(c, CURLOPT_CURLU, nullptr);
  curl_url_cleanup(url);
  Status s = FromCurl(code, errbuf);
  if (s.ok()) {
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    out.status = static_cast<int>(status);
    KeepEndToEnd(&out.headers, sink.connection, request.method == "HEAD");
    *response = std::move(out);
  }
  Give(std::move(h));
  return s;
}

}  // namespace webtier::cache
