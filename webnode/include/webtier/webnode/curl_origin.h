// cache::Origin over HTTP/1.1 with libcurl: the upstream behind --origin.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "webtier/cache/origin.h"
#include "webtier/common/mutex.h"
#include "webtier/common/thread_annotations.h"

typedef struct Curl_URL CURLU;

namespace webtier::cache {

struct CurlOriginOptions {
  std::string base_url;                            // "http://127.0.0.1:9000" (a path prefix is kept)
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds timeout{10000};         // whole request, connect included
  size_t max_idle_handles = 64;                    // easy handles (each with its own keep-alive connections)
  std::string host;  // Host sent to the origin; empty = the client's (the base URL's when it sent none)
};

// Thread-safe: a pool of libcurl easy handles; each call takes one, so
// connections stay alive between requests (keep-alive pool) and are never
// shared between threads. Redirects are passed through, not followed.
// Calls curl_global_init once per process (before any thread uses libcurl).
class CurlOrigin final : public Origin {
 public:
  explicit CurlOrigin(CurlOriginOptions options);
  ~CurlOrigin() override;

  Status Fetch(const Request& request, Response* response) override;  // cache::Origin

 private:
  struct Handle;
  struct Base;  // the parsed base URL
  // The request's URL: the base URL with the request's path (after the base's
  // own path) and query set as URL parts. The caller frees it.
  Status BuildUrl(const Request& request, CURLU** out) const;
  std::unique_ptr<Handle> Take() WEBTIER_EXCLUDES(mu_);
  void Give(std::unique_ptr<Handle> handle) WEBTIER_EXCLUDES(mu_);

  const CurlOriginOptions options_;
  const std::unique_ptr<Base> base_;
  Mutex mu_;
  std::vector<std::unique_ptr<Handle>> idle_ WEBTIER_GUARDED_BY(mu_);
};

}  // namespace webtier::cache
