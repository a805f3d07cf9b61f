// OTLP/HTTP JSON span export (see otlp.h).
#include "webtier/common/otlp.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <nlohmann/json.hpp>

#include "webtier/common/log.h"

namespace webtier::otlp {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

std::string UnixNanos(std::chrono::system_clock::time_point t) {
  return std::to_string(std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count());
}

json Attributes(const std::vector<Attribute>& attributes) {
  json out = json::array();
  for (const auto& a : attributes) {
    json value;
    if (const auto* s = std::get_if<std::string>(&a.value)) value = {{"stringValue", *s}};
    else if (const auto* i = std::get_if<int64_t>(&a.value)) value = {{"intValue", std::to_string(*i)}};  // int64 as a string
    else if (const auto* d = std::get_if<double>(&a.value)) value = {{"doubleValue", *d}};
    else value = {{"boolValue", std::get<bool>(a.value)}};
    out.push_back({{"key", a.key}, {"value", value}});
  }
  return out;
}

// Milliseconds left until `deadline`, at least 1 while it has not passed.
int Left(Clock::time_point deadline) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return ms <= 0 ? 0 : static_cast<int>(ms);
}

// Waits for `events` on `fd` until `deadline`.
bool WaitFor(int fd, short events, Clock::time_point deadline) {
  pollfd p{fd, events, 0};
  for (;;) {
    const int left = Left(deadline);
    if (left == 0) return false;
    const int n = ::poll(&p, 1, left);
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return false;
  }
}

}  // namespace

std::string EncodeJson(std::string_view service, const std::vector<Span>& spans) {
  json out = json::array();
  for (const Span& s : spans) {
    json span = {{"traceId", s.trace_id},
                 {"spanId", s.span_id},
                 {"name", s.name},
                 {"kind", static_cast<int>(s.kind)},
                 {"startTimeUnixNano", UnixNanos(s.start)},
                 {"endTimeUnixNano", UnixNanos(s.end)},
                 {"attributes", Attributes(s.attributes)},
                 {"status", {{"code", s.error ? 2 : 0}}}};
    if (!s.parent_span_id.empty()) span["parentSpanId"] = s.parent_span_id;
    if (!s.events.empty()) {
      json events = json::array();
      for (const Event& e : s.events) {
        events.push_back({{"timeUnixNano", UnixNanos(e.time)}, {"name", e.name}, {"attributes", Attributes(e.attributes)}});
      }
      span["events"] = events;
    }
    out.push_back(std::move(span));
  }
  json request = {
      {"resourceSpans",
       json::array({{{"resource", {{"attributes", Attributes({{"service.name", std::string(service)}})}}},
                     {"scopeSpans", json::array({{{"scope", {{"name", "webtier"}, {"version", WEBTIER_VERSION}}},
                                                  {"spans", out}}})}}})}};
  return request.dump();
}

Status ParseEndpoint(std::string_view url, net::HostPort* address, std::string* path) {
  constexpr std::string_view kScheme = "http://";
  if (url.substr(0, kScheme.size()) != kScheme)
    return Status(ErrorCode::kInvalidArgument, "must start with http:// (a local collector; no TLS)");
  std::string_view rest = url.substr(kScheme.size());
  const size_t slash = rest.find('/');
  *path = slash == std::string_view::npos ? "/v1/traces" : std::string(rest.substr(slash));
  if (*path == "/") *path = "/v1/traces";
  for (char c : *path) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return Status(ErrorCode::kInvalidArgument, "bad path");
  }
  if (Status s = net::ParseHostPort(rest.substr(0, slash), address, 4318); !s.ok()) return s;
  if (address->host.empty()) return Status(ErrorCode::kInvalidArgument, "no host");
  return Status::Ok();
}

Status Exporter::Create(Options options, std::unique_ptr<Exporter>* out) {
  net::HostPort address;
  std::string path;
  if (Status s = ParseEndpoint(options.endpoint, &address, &path); !s.ok()) return s;
  out->reset(new Exporter(std::move(options), std::move(address), std::move(path)));
  return Status::Ok();
}

Exporter::Exporter(Options options, net::HostPort address, std::string path)
    : options_(std::move(options)), address_(std::move(address)), path_(std::move(path)), thread_([this] { Run(); }) {}

Exporter::~Exporter() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
  }
  wake_.SignalAll();
  thread_.join();
}

void Exporter::Export(Span span) {
  ReleasableMutexLock lock(&mu_);
  if (queue_.size() >= options_.max_queue) {
    ++dropped_;
    return;
  }
  queue_.push_back(std::move(span));
  const bool full = queue_.size() >= options_.batch;
  lock.Release();
  if (full) wake_.Signal();
}

void Exporter::Flush() {
  MutexLock lock(&mu_);
  const uint64_t ticket = ++requested_;
  wake_.Signal();
  while (completed_ < ticket && !stop_) flushed_.Wait(&mu_);
}

void Exporter::Count(uint64_t exported, uint64_t dropped) {
  if (options_.on_result && (exported > 0 || dropped > 0)) options_.on_result(exported, dropped);
}

void Exporter::Run() {
  for (;;) {
    uint64_t flushing = 0;
    bool stopping = false;
    std::vector<Span> spans;
    uint64_t dropped_at_queue = 0;
    {
      MutexLock lock(&mu_);
      // One deadline for the whole wait: a wake-up that finds nothing to do
      // does not extend it.
      const auto deadline = Clock::now() + options_.interval;
      while (!stop_ && queue_.size() < options_.batch && requested_ <= completed_) {
        if (!wake_.WaitUntil(&mu_, deadline)) break;
      }
      flushing = requested_;
      stopping = stop_;
      spans.swap(queue_);
      dropped_at_queue = dropped_;
      dropped_ = 0;
    }
    Count(0, dropped_at_queue);
    for (size_t at = 0; at < spans.size(); at += options_.batch) {
      const size_t n = std::min(options_.batch, spans.size() - at);
      std::vector<Span> batch(std::make_move_iterator(spans.begin() + static_cast<ptrdiff_t>(at)),
                              std::make_move_iterator(spans.begin() + static_cast<ptrdiff_t>(at + n)));
      if (Post(EncodeJson(options_.service, batch))) Count(n, 0);
      else Count(0, n);
    }
    MutexLock lock(&mu_);
    completed_ = std::max(completed_, flushing);
    flushed_.SignalAll();
    if (stopping) return;
  }
}

bool Exporter::Post(const std::string& body) {
  const auto deadline = Clock::now() + options_.timeout;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(address_.port);
  if (::getaddrinfo(address_.host.c_str(), port.c_str(), &hints, &found) != 0 || found == nullptr) {
    log::Warn("otlp", "cannot resolve the collector").kv("endpoint", options_.endpoint);
    return false;
  }
  const int fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  bool ok = fd >= 0;
  if (ok && ::connect(fd, found->ai_addr, found->ai_addrlen) != 0) {
    ok = errno == EINPROGRESS && WaitFor(fd, POLLOUT, deadline);
    int err = 0;
    socklen_t len = sizeof err;
    ok = ok && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
  }
  ::freeaddrinfo(found);
  std::string request = "POST " + path_ + " HTTP/1.1\r\nHost: " + address_.ToString() +
                        "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
                        "\r\nConnection: close\r\n\r\n";
  request += body;
  for (size_t sent = 0; ok && sent < request.size();) {
    const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n > 0) sent += static_cast<size_t>(n);
    else ok = n < 0 && (errno == EAGAIN || errno == EINTR) && WaitFor(fd, POLLOUT, deadline);
  }
  std::string answer;
  while (ok && answer.find("\r\n") == std::string::npos && answer.size() < 1024) {
    char buf[256];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) answer.append(buf, static_cast<size_t>(n));
    else ok = n < 0 && (errno == EAGAIN || errno == EINTR) && WaitFor(fd, POLLIN, deadline);
  }
  if (fd >= 0) ::close(fd);
  // "HTTP/1.1 200 OK": a 2xx status.
  ok = ok && answer.size() >= 12 && answer.compare(0, 5, "HTTP/") == 0 && answer[9] == '2';
  if (!ok) log::Warn("otlp", "span batch not accepted").kv("endpoint", options_.endpoint).kv("answer", answer.substr(0, answer.find('\r')));
  return ok;
}

}  // namespace webtier::otlp
