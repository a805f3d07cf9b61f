// The access log's line formats and its writer thread (see access_log.h).
#include "webtier/balancer/telemetry/access_log.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <random>

#include "webtier/balancer/telemetry/proxy_metrics.h"
#include "webtier/common/log.h"

namespace webtier::balancer {

namespace {

constexpr const char* kComponent = "access_log";
// A shard holding this much wakes the writer before its interval is up.
constexpr size_t kWakeBytes = 64 * 1024;
// A pipe takes a write of this size whenever poll() says it has room.
constexpr size_t kPipeWrite = 4096;

constexpr const char* kFlagNames[] = {
    "no_member",      "no_healthy_member", "connect_failed",  "member_reset", "member_timeout", "member_unhealthy",
    "member_5xx",     "response_refused",  "bad_request",     "framing_refused", "limit",       "admin_path",
    "misdirected",    "client_gone",       "upgraded",        "draining",        "edge_hit"};
constexpr size_t kFlagCount = sizeof(kFlagNames) / sizeof(kFlagNames[0]);

constexpr char kHex[] = "0123456789abcdef";

// A pipe, socket or terminal: a write may wait for a reader.
bool Pollable(int fd) {
  struct stat st{};
  return ::fstat(fd, &st) == 0 && !S_ISREG(st.st_mode);
}

bool JsonSafe(unsigned char c) { return c >= 0x20 && c < 0x7f && c != '"' && c != '\\'; }

void AppendJsonString(std::string& out, std::string_view s) {
  out.push_back('"');
  size_t i = 0;
  while (i < s.size()) {
    size_t run = i;
    while (run < s.size() && JsonSafe(static_cast<unsigned char>(s[run]))) ++run;
    out.append(s.data() + i, run - i);  // safe bytes in one go: nearly always all of them
    if (run == s.size()) break;
    const auto c = static_cast<unsigned char>(s[run]);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else {
      out.append("\\u00", 4);
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
    i = run + 1;
  }
  out.push_back('"');
}

void AppendTextValue(std::string& out, std::string_view s) {
  if (s.empty()) {
    out.push_back('-');
    return;
  }
  bool quote = false;
  for (unsigned char c : s) {
    if (c <= 0x20 || c >= 0x7f || c == '"' || c == '=' || c == '\\') {
      quote = true;
      break;
    }
  }
  if (!quote) {
    out.append(s);
    return;
  }
  out.push_back('"');
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c < 0x20 || c >= 0x7f) {
      out.append("\\x", 2);
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  out.push_back('"');
}

void AppendUnsigned(std::string& out, uint64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

// Milliseconds with three decimals (microseconds), rounded.
void AppendMs(std::string& out, double ms) {
  const auto us = static_cast<uint64_t>(ms * 1000.0 + 0.5);
  AppendUnsigned(out, us / 1000);
  const auto frac = static_cast<unsigned>(us % 1000);
  out.push_back('.');
  out.push_back(static_cast<char>('0' + frac / 100));
  out.push_back(static_cast<char>('0' + frac / 10 % 10));
  out.push_back(static_cast<char>('0' + frac % 10));
}

// RFC 3339 UTC with milliseconds; the date and time of day are formatted once
// per second per thread.
void AppendTime(std::string& out, std::chrono::system_clock::time_point t) {
  thread_local time_t cached_second = -1;
  thread_local char cached[24];
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const time_t second = static_cast<time_t>(ms / 1000);
  if (second != cached_second) {
    tm parts{};
    gmtime_r(&second, &parts);
    std::strftime(cached, sizeof cached, "%Y-%m-%dT%H:%M:%S", &parts);
    cached_second = second;
  }
  out.append(cached, 19);
  const int frac = static_cast<int>(ms % 1000);
  out.push_back('.');
  out.push_back(static_cast<char>('0' + frac / 100));
  out.push_back(static_cast<char>('0' + frac / 10 % 10));
  out.push_back(static_cast<char>('0' + frac % 10));
  out.push_back('Z');
}

// Writes key/value pairs in one of the two formats.
class LineWriter {
 public:
  LineWriter(std::string& out, AccessLogFormat format) : out_(out), json_(format == AccessLogFormat::kJson) {
    if (json_) out_.push_back('{');
  }
  void Key(std::string_view key) {
    if (json_) {
      if (!first_) out_.push_back(',');
      out_.push_back('"');
      out_.append(key);
      out_.append("\":", 2);
    } else {
      if (!first_) out_.push_back(' ');
      out_.append(key);
      out_.push_back('=');
    }
    first_ = false;
  }
  // Empty: null (JSON) or `-` (text).
  void String(std::string_view key, std::string_view value) {
    Key(key);
    if (!json_) AppendTextValue(out_, value);
    else if (value.empty()) out_.append("null", 4);
    else AppendJsonString(out_, value);
  }
  void Time(std::string_view key, std::chrono::system_clock::time_point t) {
    Key(key);
    if (json_) out_.push_back('"');
    AppendTime(out_, t);
    if (json_) out_.push_back('"');
  }
  void Unsigned(std::string_view key, uint64_t v) {
    Key(key);
    AppendUnsigned(out_, v);
  }
  void Bool(std::string_view key, bool v) {
    Key(key);
    out_.append(v ? "true" : "false");
  }
  // Negative: null (JSON) or `-` (text).
  void Ms(std::string_view key, double ms) {
    Key(key);
    if (ms < 0) out_.append(json_ ? "null" : "-");
    else AppendMs(out_, ms);
  }
  void Flags(std::string_view key, uint32_t flags) {
    Key(key);
    if (json_) out_.push_back('[');
    bool first = true;
    for (size_t i = 0; i < kFlagCount; ++i) {
      if (!(flags & (1u << i))) continue;
      if (!first) out_.push_back(',');
      first = false;
      if (json_) out_.push_back('"');
      out_.append(kFlagNames[i]);
      if (json_) out_.push_back('"');
    }
    if (json_) out_.push_back(']');
    else if (first) out_.push_back('-');
  }
  void End() {
    if (json_) out_.push_back('}');
    out_.push_back('\n');
  }

 private:
  std::string& out_;
  const bool json_;
  bool first_ = true;
};

}  // namespace

void FormatAccessLine(const AccessRecord& r, AccessLogFormat format, std::string& line) {
  LineWriter w(line, format);
  w.Time("time", r.time);
  w.String("client", r.client);
  w.String("protocol", r.protocol);
  w.Bool("tls", r.tls);
  w.String("method", r.method);
  w.String("authority", r.authority);
  w.String("path", r.path);
  w.Unsigned("status", static_cast<uint64_t>(r.status));
  w.Unsigned("bytes_in", r.bytes_in);
  w.Unsigned("bytes_out", r.bytes_out);
  w.Ms("duration_ms", r.duration_ms);
  w.Ms("connect_ms", r.connect_ms);
  w.Ms("upstream_ms", r.upstream_ms);
  w.String("member", r.member);
  w.String("member_addr", r.member_addr);
  w.Unsigned("attempts", static_cast<uint64_t>(r.attempts));
  w.Flags("flags", r.flags);
  w.String("request_id", r.request_id);
  w.String("trace_id", r.trace_id);
  w.String("user_agent", r.user_agent);
  w.String("cache", r.cache);
  w.End();
}

class AccessLog::Shard {
 public:
  explicit Shard(size_t reserve) {
    MutexLock l(&mu);  // uncontended: no other thread has the shard yet
    pending.reserve(reserve);
    spare.reserve(reserve);
  }
  Mutex mu;
  std::string pending WEBTIER_GUARDED_BY(mu);
  uint64_t lines WEBTIER_GUARDED_BY(mu) = 0;    // in `pending`
  uint64_t dropped WEBTIER_GUARDED_BY(mu) = 0;  // since the writer last took them
  // The writer's: what it took, swapped with `pending` (both keep their
  // capacity, so a steady flow allocates nothing: freeing and growing a large
  // buffer every 100 ms costs the worker page faults and TLB flushes).
  std::string spare;
  // The worker's own:
  std::string scratch;
  uint64_t rng = std::random_device{}() | 1;
};

Status AccessLog::Open(Options options, ProxyMetrics* metrics, std::unique_ptr<AccessLog>* out) {
  int fd = STDOUT_FILENO;
  if (options.path != "-") {
    fd = ::open(options.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) return Status(ErrorCode::kInvalidArgument, options.path + ": " + std::strerror(errno));
  }
  out->reset(new AccessLog(std::move(options), metrics, fd));
  return Status::Ok();
}

AccessLog::AccessLog(Options options, ProxyMetrics* metrics, int fd)
    : options_(std::move(options)), metrics_(metrics), fd_(fd), pollable_(Pollable(fd)) {
  thread_ = std::thread([this] { Run(); });
}

AccessLog::~AccessLog() {
  {
    MutexLock l(&mu_);
    stop_ = true;
  }
  cv_.SignalAll();
  thread_.join();
  if (fd_ != STDOUT_FILENO) ::close(fd_);
}

AccessLog::Shard* AccessLog::NewShard() {
  MutexLock l(&mu_);
  shards_.push_back(std::make_unique<Shard>(std::min<size_t>(options_.shard_bytes, 256 * 1024)));
  return shards_.back().get();
}

void AccessLog::Log(Shard* shard, const AccessRecord& r) {
  if (options_.sample < 1.0 && r.status != 0 && r.status < 400 && r.flags == 0) {
    uint64_t x = shard->rng;  // xorshift64
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    shard->rng = x;
    if (static_cast<double>(x >> 11) * 0x1.0p-53 >= options_.sample) return;
  }
  std::string& line = shard->scratch;
  line.clear();
  FormatAccessLine(r, options_.format, line);
  bool wake = false;
  {
    MutexLock l(&shard->mu);
    if (shard->pending.size() + line.size() > options_.shard_bytes) {
      ++shard->dropped;
      return;
    }
    const bool below = shard->pending.size() < kWakeBytes;
    shard->pending.append(line);
    ++shard->lines;
    wake = below && shard->pending.size() >= kWakeBytes;
  }
  if (wake) {
    kick_ = true;
    cv_.Signal();
  }
}

void AccessLog::Reopen() {
  {
    MutexLock l(&mu_);
    reopen_ = true;
  }
  cv_.SignalAll();
}

void AccessLog::FlushForTest() {
  MutexLock l(&mu_);
  const uint64_t ticket = ++flush_requested_;
  cv_.SignalAll();
  while (flush_done_ < ticket) flushed_.Wait(&mu_);
}

AccessLog::Counts AccessLog::counts() const {
  MutexLock l(&mu_);
  return counts_;
}

void AccessLog::Run() {
  for (;;) {
    bool stopping, reopen;
    uint64_t flush_target;
    std::vector<Shard*> shards;
    {
      MutexLock l(&mu_);
      const auto due = std::chrono::steady_clock::now() + options_.flush_interval;
      while (!(stop_ || reopen_ || kick_ || flush_requested_ != flush_done_) && cv_.WaitUntil(&mu_, due)) {
      }
      kick_ = false;
      stopping = stop_;
      reopen = std::exchange(reopen_, false);
      flush_target = flush_requested_;
      for (auto& s : shards_) shards.push_back(s.get());
    }
    // Lines queued before the reopen request go to the file that was renamed
    // (logrotate's "create" mode has moved it already): none is lost.
    uint64_t written = 0, dropped = 0;
    bool failed = false;
    for (Shard* s : shards) {
      uint64_t lines;
      {
        MutexLock sl(&s->mu);
        s->spare.swap(s->pending);  // the worker goes on in the (empty) buffer it gets back
        lines = std::exchange(s->lines, 0);
        dropped += std::exchange(s->dropped, 0);
      }
      if (s->spare.empty()) continue;
      if (!failed && WriteOut(s->spare)) {
        written += lines;
      } else {
        failed = true;  // the rest of this round is dropped too: the next round tries again
        dropped += lines;
      }
      s->spare.clear();
    }
    if (reopen) ReopenNow();
    MutexLock l(&mu_);
    counts_.written += written;
    counts_.dropped += dropped;
    if (failed) ++counts_.write_errors;
    if (reopen) ++counts_.reopens;
    if (metrics_ != nullptr) {
      if (written > 0) metrics_->access_log_written.Increment(static_cast<double>(written));
      if (dropped > 0) metrics_->access_log_dropped.Increment(static_cast<double>(dropped));
    }
    flush_done_ = flush_target;
    flushed_.SignalAll();
    if (stopping) return;
  }
}

bool AccessLog::WriteOut(std::string_view data) {
  auto stalled_since = std::chrono::steady_clock::time_point::max();
  while (!data.empty()) {
    if (pollable_) {
      pollfd p{fd_, POLLOUT, 0};
      const int rc = ::poll(&p, 1, 100);
      if (rc == 0 || (rc < 0 && errno == EINTR)) {
        // A reader that does not read: wait for it, unless stopping, where
        // a second is all it gets.
        if (stop_) {
          const auto now = std::chrono::steady_clock::now();
          if (stalled_since == std::chrono::steady_clock::time_point::max()) stalled_since = now;
          else if (now - stalled_since > std::chrono::seconds(1)) return false;
        }
        continue;
      }
    }
    const size_t chunk = pollable_ ? std::min(data.size(), kPipeWrite) : data.size();
    const ssize_t n = ::write(fd_, data.data(), chunk);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      log::Error(kComponent, "access log write failed; lines dropped").kv("err", std::strerror(errno));
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

void AccessLog::ReopenNow() {
  if (options_.path == "-") return;
  const int fd = ::open(options_.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) {
    log::Error(kComponent, "access log reopen failed; writing to the old file").kv("path", options_.path)
        .kv("err", std::strerror(errno));
    return;
  }
  ::close(fd_);
  fd_ = fd;
  pollable_ = Pollable(fd_);
  log::Info(kComponent, "access log reopened").kv("path", options_.path);
}

std::string AccessFlagsText(uint32_t flags) {
  std::string out;
  for (size_t i = 0; i < kFlagCount; ++i) {
    if (!(flags & (1u << i))) continue;
    if (!out.empty()) out.push_back(',');
    out.append(kFlagNames[i]);
  }
  return out;
}

}  // namespace webtier::balancer
