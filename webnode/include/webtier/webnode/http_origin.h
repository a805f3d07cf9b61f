// cache::Origin over plain HTTP/1.1 (an http:// --origin): the request goes
// out in one send on a kept-alive connection, the answer is read with the
// worker's own blocking waits and parsed here. An https:// origin keeps
// libcurl (curl_origin.h).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "webtier/cache/origin.h"
#include "webtier/common/mutex.h"
#include "webtier/common/thread_annotations.h"

namespace webtier::cache {

struct HttpOriginOptions {
  std::string base_url;  // "http://127.0.0.1:9000" (a path prefix is kept)
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds timeout{10000};  // whole request, connect included
  size_t max_idle_connections = 64;
  std::string host;  // Host sent to the origin; empty = the client's (the base URL's when it sent none)
  size_t max_header_bytes = 64 * 1024;    // an answer's status line and fields (each 1xx's too), its trailers
  size_t max_body_bytes = size_t{1} << 30;  // a longer answer is a failed fetch (502)
};

// Reads one HTTP/1.1 answer from the bytes an origin sends, in any cuts.
// Every byte is looked at a bounded number of times, whatever the cuts; the
// header section, a chunk-size line and the trailer section are bounded by
// max_header_bytes, the body by max_body_bytes. 1xx answers before the final
// one are skipped (at most 8); 101 is an error (nothing asked to switch).
// Framing as RFC 9112 section 6.3 has a client read it: no body for a HEAD,
// a 1xx, 204 or 304; chunked when it is the only transfer coding; until the
// close with other codings and no chunked, or with no length; else
// Content-Length (a list of equal values is one). Errors: chunked beside
// another coding or twice, Transfer-Encoding in HTTP/1.0, a differing
// Content-Length, obsolete line folding, a field name with whitespace, a
// control byte in a field. Trailer fields are read and dropped.
class OriginResponseReader {
 public:
  enum class Result { kMore, kDone, kError };

  OriginResponseReader(bool head_request, size_t max_header_bytes, size_t max_body_bytes);

  Result Feed(std::string_view bytes);
  Result Eof();  // the origin closed its side

  bool started() const { return received_ > 0; }
  const std::string& error() const { return error_; }
  // After kDone: the connection may carry the next request (the answer
  // allowed it, its end was framed, and no byte came after it).
  bool reusable() const;
  // After kDone: status, end-to-end fields (hop-by-hop ones, those its
  // Connection lists and the framing fields dropped; a HEAD's Content-Length
  // kept), the body without its framing.
  Response TakeResponse() { return std::move(response_); }

 private:
  enum class Phase { kHead, kFixed, kChunkSize, kChunkData, kChunkEnd, kTrailers, kUntilClose, kDone, kError };

  Result Advance();
  Result Fail(std::string why);
  bool ParseHead(std::string_view head);
  // The next line from pos_ (without its CR LF or LF), or false for more bytes.
  bool NextLine(std::string_view* line, size_t limit, const char* what);
  bool AppendBody(std::string_view bytes);
  // Moves up to remaining_ buffered bytes (of the fixed body or the chunk)
  // into the body; false over the limit.
  bool TakeCounted();

  const bool head_request_;
  const size_t max_header_bytes_;
  const size_t max_body_bytes_;
  Phase phase_ = Phase::kHead;
  std::string buf_;
  size_t pos_ = 0;   // the first byte not consumed
  size_t scan_ = 0;  // where the search for the next line feed resumes
  size_t line_ = 0;  // in the head: where its next line starts
  uint64_t received_ = 0;
  uint64_t remaining_ = 0;  // of the fixed body or the current chunk
  int interim_ = 0;         // 1xx answers skipped
  size_t trailer_bytes_ = 0;
  bool keep_alive_ = false;
  bool trailing_bytes_ = false;  // bytes came after the answer's end
  std::string error_;
  Response response_;
};

// Thread-safe: any worker may call Fetch; a connection serves one request at
// a time and goes back to a pool of idle ones when its answer was framed.
// An idle connection is checked (one non-blocking peek) before reuse; when a
// reused connection fails before any byte of the answer (the origin closed
// it meanwhile), the request is sent once more on a new connection.
// Redirects are passed through. The host name is resolved per new connection.
class HttpOrigin final : public Origin {
 public:
  explicit HttpOrigin(HttpOriginOptions options);
  ~HttpOrigin() override;
  HttpOrigin(const HttpOrigin&) = delete;
  HttpOrigin& operator=(const HttpOrigin&) = delete;

  Status Fetch(const Request& request, Response* response) override;  // cache::Origin

  // True for a URL this client serves (http://, no user information).
  static bool Handles(std::string_view base_url);

 private:
  using Deadline = std::chrono::steady_clock::time_point;
  Status Serialize(const Request& request, std::string* wire) const;
  Status Connect(Deadline deadline, int* fd) const;
  Status Exchange(int fd, std::string_view wire, Deadline deadline, OriginResponseReader* reader) const;
  int TakeIdle() WEBTIER_EXCLUDES(mu_);
  void GiveIdle(int fd) WEBTIER_EXCLUDES(mu_);

  const HttpOriginOptions options_;
  bool valid_ = false;
  std::string host_;         // name or address, without brackets
  std::string port_;         // "80" when the URL names none
  std::string authority_;    // the Host the URL implies
  std::string path_prefix_;  // without a trailing '/'
  Mutex mu_;
  std::vector<int> idle_ WEBTIER_GUARDED_BY(mu_);
};

}  // namespace webtier::cache
