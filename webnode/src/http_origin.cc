// cache::Origin over plain HTTP/1.1: the answer reader and the connections.
#include "webtier/webnode/http_origin.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "webtier/common/http_syntax.h"
#include "webtier/common/log.h"
#include "webtier/webnode/origin_fields.h"

namespace webtier::cache {
namespace {

using http_syntax::IsToken;

constexpr size_t kMaxChunkLine = 4096;  // a chunk size and its extensions
constexpr int kMaxInterim = 8;          // 1xx answers before the final one
constexpr size_t kReadSize = 16 * 1024;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A field value or a chunk extension: visible bytes, SP and HTAB (and
// obs-text); no other control byte.
bool IsFieldText(std::string_view s) {
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  }
  return true;
}

// A request-target byte: visible ASCII, '#' excepted (no fragment is sent).
bool IsTargetText(std::string_view s) {
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c >= 0x7f || c == '#') return false;
  }
  return true;
}

int64_t MillisLeft(std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return left.count() > 0 ? left.count() : 0;
}

// Waits for `events` on fd until the deadline: 1 ready, 0 timed out, -1 error.
int WaitFor(int fd, short events, std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(MillisLeft(deadline), 1 << 30)));
    if (n > 0) return 1;
    if (n == 0) {
      if (MillisLeft(deadline) == 0) return 0;
      continue;  // woken a little early
    }
    if (errno != EINTR) return -1;
  }
}

Status Unavailable(std::string_view what, int err) {
  return Status(ErrorCode::kUnavailable, std::string("origin: ") + std::string(what) + ": " + std::strerror(err));
}

}  // namespace

// ---- OriginResponseReader ----

OriginResponseReader::OriginResponseReader(bool head_request, size_t max_header_bytes, size_t max_body_bytes)
    : head_request_(head_request), max_header_bytes_(max_header_bytes), max_body_bytes_(max_body_bytes) {}

OriginResponseReader::Result OriginResponseReader::Fail(std::string why) {
  phase_ = Phase::kError;
  error_ = std::move(why);
  return Result::kError;
}

bool OriginResponseReader::reusable() const {
  return phase_ == Phase::kDone && keep_alive_ && !trailing_bytes_;
}

OriginResponseReader::Result OriginResponseReader::Feed(std::string_view bytes) {
  received_ += bytes.size();
  if (phase_ == Phase::kError) return Result::kError;
  if (phase_ == Phase::kDone) {
    if (!bytes.empty()) trailing_bytes_ = true;
    return Result::kDone;
  }
  // Consumed bytes are dropped once they are most of the buffer, so a byte
  // is moved at most a bounded number of times.
  if (pos_ > 32 * 1024 && pos_ * 2 > buf_.size()) {
    buf_.erase(0, pos_);
    scan_ -= pos_;
    line_ = line_ >= pos_ ? line_ - pos_ : 0;
    pos_ = 0;
  }
  buf_.append(bytes);
  return Advance();
}

OriginResponseReader::Result OriginResponseReader::Eof() {
  switch (phase_) {
    case Phase::kDone:
      return Result::kDone;
    case Phase::kError:
      return Result::kError;
    case Phase::kUntilClose:  // Advance has taken every byte into the body
      phase_ = Phase::kDone;
      return Result::kDone;
    default:
      return Fail(received_ == 0 ? "closed before answering" : "closed before the end of the answer");
  }
}

bool OriginResponseReader::NextLine(std::string_view* line, size_t limit, const char* what) {
  const size_t nl = buf_.find('\n', scan_);
  if (nl == std::string::npos) {
    scan_ = buf_.size();
    if (buf_.size() - pos_ > limit) Fail(std::string(what) + " too long");
    return false;
  }
  if (nl - pos_ > limit) {
    Fail(std::string(what) + " too long");
    return false;
  }
  *line = std::string_view(buf_).substr(pos_, nl - pos_);
  if (!line->empty() && line->back() == '\r') line->remove_suffix(1);
  pos_ = nl + 1;
  scan_ = pos_;
  return true;
}

bool OriginResponseReader::AppendBody(std::string_view bytes) {
  if (response_.body.size() + bytes.size() > max_body_bytes_) {
    Fail("answer body over " + std::to_string(max_body_bytes_) + " bytes");
    return false;
  }
  response_.body.append(bytes);
  return true;
}

bool OriginResponseReader::TakeCounted() {
  const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, buf_.size() - pos_));
  if (!AppendBody(std::string_view(buf_).substr(pos_, n))) return false;
  pos_ += n;
  remaining_ -= n;
  return true;
}

OriginResponseReader::Result OriginResponseReader::Advance() {
  for (;;) {
    switch (phase_) {
      case Phase::kHead: {
        // pos_ stays on the head's first byte until its empty line is here
        // (line_ is where the next line starts); then it is parsed once.
        for (;;) {
          const size_t nl = buf_.find('\n', scan_);
          if (nl == std::string::npos) {
            scan_ = buf_.size();
            if (buf_.size() - pos_ > max_header_bytes_) return Fail("header section too long");
            return Result::kMore;
          }
          if (nl + 1 - pos_ > max_header_bytes_) return Fail("header section too long");
          const bool empty = nl == line_ || (nl == line_ + 1 && buf_[line_] == '\r');
          scan_ = line_ = nl + 1;
          if (!empty) continue;
          if (line_ - pos_ <= 2) return Fail("empty line before the status line");
          const size_t start = pos_;
          pos_ = line_;
          if (!ParseHead(std::string_view(buf_).substr(start, pos_ - start))) return Result::kError;
          break;
        }
        break;
      }
      case Phase::kFixed: {
        if (!TakeCounted()) return Result::kError;
        if (remaining_ > 0) return Result::kMore;
        phase_ = Phase::kDone;
        break;
      }
      case Phase::kChunkSize: {
        std::string_view line;
        if (!NextLine(&line, kMaxChunkLine, "chunk-size line")) {
          return phase_ == Phase::kError ? Result::kError : Result::kMore;
        }
        uint64_t size = 0;
        size_t i = 0;
        for (; i < line.size() && HexValue(line[i]) >= 0; ++i) {
          if ((size >> 56) != 0) return Fail("chunk size too large");
          size = size * 16 + static_cast<uint64_t>(HexValue(line[i]));
        }
        const std::string_view rest = http_syntax::TrimOws(line.substr(i));
        if (i == 0 || (!rest.empty() && rest.front() != ';') || !IsFieldText(rest)) return Fail("bad chunk-size line");
        if (size > max_body_bytes_) return Fail("answer body over " + std::to_string(max_body_bytes_) + " bytes");
        remaining_ = size;
        phase_ = size == 0 ? Phase::kTrailers : Phase::kChunkData;
        break;
      }
      case Phase::kChunkData: {
        if (!TakeCounted()) return Result::kError;
        if (remaining_ > 0) return Result::kMore;
        scan_ = pos_;
        phase_ = Phase::kChunkEnd;
        break;
      }
      case Phase::kChunkEnd: {
        if (pos_ >= buf_.size()) return Result::kMore;
        if (buf_[pos_] == '\r') {
          if (pos_ + 1 >= buf_.size()) return Result::kMore;
          if (buf_[pos_ + 1] != '\n') return Fail("chunk data not followed by CRLF");
          pos_ += 2;
        } else if (buf_[pos_] == '\n') {
          pos_ += 1;
        } else {
          return Fail("chunk data not followed by CRLF");
        }
        scan_ = pos_;
        phase_ = Phase::kChunkSize;
        break;
      }
      case Phase::kTrailers: {
        std::string_view line;
        const size_t before = pos_;
        if (!NextLine(&line, max_header_bytes_ - std::min(max_header_bytes_, trailer_bytes_), "trailer section")) {
          return phase_ == Phase::kError ? Result::kError : Result::kMore;
        }
        trailer_bytes_ += pos_ - before;
        if (line.empty()) {
          phase_ = Phase::kDone;
          break;
        }
        const size_t colon = line.find(':');
        if (line.front() == ' ' || line.front() == '\t' || colon == std::string_view::npos ||
            !IsToken(line.substr(0, colon)) || !IsFieldText(line.substr(colon + 1))) {
          return Fail("bad trailer field");
        }
        break;  // trailer fields are dropped
      }
      case Phase::kUntilClose: {
        if (!AppendBody(std::string_view(buf_).substr(pos_))) return Result::kError;
        pos_ = buf_.size();
        scan_ = pos_;
        return Result::kMore;
      }
      case Phase::kDone:
        if (pos_ < buf_.size()) trailing_bytes_ = true;
        return Result::kDone;
      case Phase::kError:
        return Result::kError;
    }
  }
}

bool OriginResponseReader::ParseHead(std::string_view head) {
  size_t at = 0;
  auto next_line = [&](std::string_view* line) {
    const size_t nl = head.find('\n', at);
    if (nl == std::string_view::npos) return false;
    *line = head.substr(at, nl - at);
    if (!line->empty() && line->back() == '\r') line->remove_suffix(1);
    at = nl + 1;
    return true;
  };
  std::string_view status_line;
  next_line(&status_line);
  // HTTP-version SP 3DIGIT SP [reason-phrase] (the SP before an empty reason
  // is missing from some servers: accepted).
  if (status_line.size() < 12 || status_line.substr(0, 7) != "HTTP/1." || !IsDigit(status_line[7]) ||
      status_line[8] != ' ' || !IsDigit(status_line[9]) || !IsDigit(status_line[10]) || !IsDigit(status_line[11]) ||
      (status_line.size() > 12 && status_line[12] != ' ') || !IsFieldText(status_line) || status_line[9] == '0') {
    Fail("bad status line");
    return false;
  }
  const int status = (status_line[9] - '0') * 100 + (status_line[10] - '0') * 10 + (status_line[11] - '0');
  const bool http11 = status_line[7] != '0';

  Headers fields;
  http_syntax::ConnectionOptions connection;
  int codings = 0;          // Transfer-Encoding elements, over all its lines
  int chunked = 0;          // of which "chunked"
  bool chunked_last = false;
  bool has_length = false;
  bool bad_length = false;
  uint64_t length = 0;
  std::string_view line;
  while (next_line(&line) && !line.empty()) {
    if (line.front() == ' ' || line.front() == '\t') {
      Fail("obsolete line folding");
      return false;
    }
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || !IsToken(line.substr(0, colon))) {
      Fail("bad field line");
      return false;
    }
    const std::string_view name = line.substr(0, colon);
    const std::string_view value = http_syntax::TrimOws(line.substr(colon + 1));
    if (!IsFieldText(value)) {
      Fail("control byte in a field value");
      return false;
    }
    if (EqualsIgnoreCase(name, "Connection")) {
      connection.Add(value);
    } else if (EqualsIgnoreCase(name, "Transfer-Encoding")) {
      http_syntax::ForEachListElement(value, [&](std::string_view coding) {
        ++codings;
        chunked_last = EqualsIgnoreCase(coding, "chunked");
        if (chunked_last) ++chunked;
        return true;
      });
    } else if (EqualsIgnoreCase(name, "Content-Length")) {
      http_syntax::ForEachListElement(value, [&](std::string_view v) {
        uint64_t n = 0;
        if (v.empty() || v.size() > 18) bad_length = true;
        for (char c : v) {
          if (!IsDigit(c)) bad_length = true;
          n = n * 10 + static_cast<uint64_t>(c - '0');
        }
        if (has_length && n != length) bad_length = true;
        has_length = true;
        length = n;
        return !bad_length;
      });
    }
    fields.emplace_back(std::string(name), std::string(value));
  }

  scan_ = line_ = pos_;  // Advance moved pos_ past the empty line
  if (status < 200) {
    if (status == 101) {
      Fail("101 Switching Protocols, which nothing asked for");
      return false;
    }
    if (++interim_ > kMaxInterim) {
      Fail("more than " + std::to_string(kMaxInterim) + " interim answers");
      return false;
    }
    return true;  // the final answer follows: phase_ stays kHead
  }

  response_.status = status;
  KeepEndToEnd(&fields, connection, head_request_);
  response_.headers = std::move(fields);
  keep_alive_ = http11 ? !connection.close() : connection.keep_alive();

  if (head_request_ || status == 204 || status == 304) {
    phase_ = Phase::kDone;
    return true;
  }
  if (codings > 0) {
    if (!http11) {
      Fail("Transfer-Encoding in HTTP/1.0");
      return false;
    }
    keep_alive_ = keep_alive_ && !has_length;  // both framings: Transfer-Encoding wins, the connection ends
    if (chunked == 0) {
      // No chunked at all: the body runs to the close (RFC 9112 6.3), and
      // goes on as it came, as libcurl passed it.
      keep_alive_ = false;
      phase_ = Phase::kUntilClose;
      return true;
    }
    // chunked must be the only coding: after another one the body would
    // reach the cache still coded; twice, or not last, the framing is
    // ambiguous.
    if (chunked > 1 || !chunked_last || codings > 1) {
      Fail("transfer codings other than a lone chunked");
      return false;
    }
    phase_ = Phase::kChunkSize;
    return true;
  }
  if (bad_length) {
    Fail("bad Content-Length");
    return false;
  }
  if (has_length) {
    if (length > max_body_bytes_) {
      Fail("answer body over " + std::to_string(max_body_bytes_) + " bytes");
      return false;
    }
    remaining_ = length;
    phase_ = length > 0 ? Phase::kFixed : Phase::kDone;
    return true;
  }
  keep_alive_ = false;
  phase_ = Phase::kUntilClose;
  return true;
}

// ---- HttpOrigin ----

bool HttpOrigin::Handles(std::string_view base_url) {
  if (base_url.size() < 8 || !EqualsIgnoreCase(base_url.substr(0, 7), "http://")) return false;
  const std::string_view rest = base_url.substr(7);
  const std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  return !authority.empty() && authority.find('@') == std::string_view::npos;
}

HttpOrigin::HttpOrigin(HttpOriginOptions options) : options_(std::move(options)) {
  if (!Handles(options_.base_url)) {
    log::Error("origin", "invalid --origin URL").kv("url", options_.base_url);
    return;
  }
  const std::string_view rest = std::string_view(options_.base_url).substr(7);
  const size_t end = rest.find_first_of("/?#");
  const std::string_view authority = rest.substr(0, end);
  std::string_view path = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  path = path.substr(0, path.find_first_of("?#"));
  std::string_view host = authority;
  std::string_view port;
  if (authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return;
    host = authority.substr(1, close - 1);
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return;
      port = after.substr(1);
    }
  } else if (const size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty() || !IsTargetText(host) || !IsTargetText(path.empty() ? "/" : path)) {
    log::Error("origin", "invalid --origin URL").kv("url", options_.base_url);
    return;
  }
  for (char c : port) {
    if (!IsDigit(c)) {
      log::Error("origin", "invalid --origin URL").kv("url", options_.base_url);
      return;
    }
  }
  host_ = std::string(host);
  port_ = port.empty() ? "80" : std::string(port);
  authority_ = std::string(authority);
  if (port == "80") authority_.resize(authority_.size() - 3);  // ":80" is the default
  path_prefix_ = std::string(path);
  while (!path_prefix_.empty() && path_prefix_.back() == '/') path_prefix_.pop_back();
  valid_ = true;
}

HttpOrigin::~HttpOrigin() {
  MutexLock lock(&mu_);
  for (int fd : idle_) ::close(fd);
}

Status HttpOrigin::Serialize(const Request& request, std::string* wire) const {
  if (!valid_) return Status(ErrorCode::kInvalidArgument, "origin: invalid base URL");
  if (request.path.empty() || request.path.front() != '/') {
    return Status(ErrorCode::kInvalidArgument, "origin: request path is not absolute");
  }
  if (!IsToken(request.method) || !IsTargetText(request.path) || !IsTargetText(request.query)) {
    return Status(ErrorCode::kInvalidArgument, "origin: request path or query not usable in a request line");
  }
  wire->clear();
  wire->reserve(256 + request.body.size());
  wire->append(request.method).append(" ").append(path_prefix_).append(request.path);
  if (!request.query.empty()) wire->append("?").append(request.query);
  wire->append(" HTTP/1.1\r\n");
  bool host_sent = false;
  const bool usable = ForEachFieldToOrigin(request.headers, !options_.host.empty(), [&](const std::string& name,
                                                                                         const std::string& value) {
    const bool host = EqualsIgnoreCase(name, "Host");
    if (host && host_sent) return true;  // one Host: the first
    if (!IsToken(name) || !IsFieldText(value)) return false;
    host_sent = host_sent || host;
    wire->append(name).append(": ").append(value).append("\r\n");
    return true;
  });
  if (!usable) return Status(ErrorCode::kInvalidArgument, "origin: a request field not usable on the wire");
  if (!host_sent) wire->append("Host: ").append(options_.host.empty() ? authority_ : options_.host).append("\r\n");
  if (!request.body.empty() || request.method == "POST" || request.method == "PUT" || request.method == "PATCH") {
    wire->append("Content-Length: ").append(std::to_string(request.body.size())).append("\r\n");
  }
  wire->append("\r\n");
  if (request.method != "HEAD") wire->append(request.body);
  return Status::Ok();
}

Status HttpOrigin::Connect(Deadline deadline, int* out) const {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (const int rc = ::getaddrinfo(host_.c_str(), port_.c_str(), &hints, &found); rc != 0) {
    return Status(ErrorCode::kUnavailable, std::string("origin: resolving ") + host_ + ": " + ::gai_strerror(rc));
  }
  const Deadline connect_deadline = std::min(deadline, std::chrono::steady_clock::now() + options_.connect_timeout);
  Status last(ErrorCode::kUnavailable, "origin: no address for " + host_);
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      last = Unavailable("socket", errno);
      continue;
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    int err = 0;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      err = errno;
      if (err == EINPROGRESS) {
        const int w = WaitFor(fd, POLLOUT, connect_deadline);
        if (w == 0) {
          ::close(fd);
          last = Status(ErrorCode::kTimeout, "origin: connect timed out");
          continue;
        }
        socklen_t len = sizeof(err);
        if (w < 0) err = errno;
        else if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      }
    }
    if (err == 0) {
      ::freeaddrinfo(found);
      *out = fd;
      return Status::Ok();
    }
    ::close(fd);
    last = Unavailable("connect", err);
  }
  ::freeaddrinfo(found);
  return last;
}

Status HttpOrigin::Exchange(int fd, std::string_view wire, Deadline deadline, OriginResponseReader* reader) const {
  while (!wire.empty()) {
    const ssize_t n = ::send(fd, wire.data(), wire.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      wire.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      const int w = WaitFor(fd, POLLOUT, deadline);
      if (w == 0) return Status(ErrorCode::kTimeout, "origin: sending timed out");
      if (w < 0) return Unavailable("poll", errno);
      continue;
    }
    return Unavailable("send", errno);
  }
  char buf[kReadSize];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    OriginResponseReader::Result r;
    if (n > 0) {
      r = reader->Feed(std::string_view(buf, static_cast<size_t>(n)));
    } else if (n == 0) {
      r = reader->Eof();
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      const int w = WaitFor(fd, POLLIN, deadline);
      if (w == 0) return Status(ErrorCode::kTimeout, "origin: answer timed out");
      if (w < 0) return Unavailable("poll", errno);
      continue;
    } else {
      return Unavailable("recv", errno);
    }
    if (r == OriginResponseReader::Result::kDone) return Status::Ok();
    if (r == OriginResponseReader::Result::kError) {
      return Status(ErrorCode::kUnavailable, "origin: bad answer: " + reader->error());
    }
  }
}

int HttpOrigin::TakeIdle() {
  for (;;) {
    int fd = -1;
    {
      MutexLock lock(&mu_);
      if (idle_.empty()) return -1;
      fd = idle_.back();
      idle_.pop_back();
    }
    // An idle connection the origin closed, or that carries a stray byte,
    // is not used: one peek, which does not wait.
    char byte;
    const ssize_t n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return fd;
    ::close(fd);
  }
}

void HttpOrigin::GiveIdle(int fd) {
  {
    MutexLock lock(&mu_);
    if (idle_.size() < options_.max_idle_connections) {
      idle_.push_back(fd);
      return;
    }
  }
  ::close(fd);
}

Status HttpOrigin::Fetch(const Request& request, Response* response) {
  const Deadline deadline = std::chrono::steady_clock::now() + options_.timeout;
  std::string wire;
  if (Status s = Serialize(request, &wire); !s.ok()) return s;
  for (int attempt = 0;; ++attempt) {
    int fd = attempt == 0 ? TakeIdle() : -1;
    const bool reused = fd >= 0;
    if (!reused) {
      if (Status s = Connect(deadline, &fd); !s.ok()) return s;
    }
    OriginResponseReader reader(request.method == "HEAD", options_.max_header_bytes, options_.max_body_bytes);
    Status s = Exchange(fd, wire, deadline, &reader);
    if (s.ok()) {
      if (reader.reusable()) {
        GiveIdle(fd);
      } else {
        ::close(fd);
      }
      *response = reader.TakeResponse();
      return s;
    }
    ::close(fd);
    // A kept-alive connection the origin closed as the request went out:
    // nothing of it was answered, so it goes once more on a new connection.
    if (!reused || reader.started() || s.code() != ErrorCode::kUnavailable) return s;
  }
}

}  // namespace webtier::cache
