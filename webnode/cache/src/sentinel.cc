// Sentinel client: asks for the master, follows +switch-master.
#include "webtier/cache/sentinel.h"

#include <prometheus/counter.h>

#include <charconv>
#include <sstream>

#include "hiredis_conn.h"
#include "webtier/common/log.h"

namespace webtier::cache {
namespace {

constexpr char kSwitchChannel[] = "+switch-master";

bool ParsePort(std::string_view text, uint16_t* port) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value == 0 || value > 65535) return false;
  *port = static_cast<uint16_t>(value);
  return true;
}

hiredis::DialOptions DialFor(const SentinelOptions& o) {
  return {.connect_timeout = o.connect_timeout, .command_timeout = o.command_timeout, .password = {}};
}

// One Sentinel's answer to get-master-addr-by-name.
Status AskOne(const SentinelOptions& options, const net::HostPort& sentinel, net::HostPort* master) {
  std::unique_ptr<hiredis::Connection> conn;
  if (Status s = hiredis::Dial(sentinel, DialFor(options), &conn); !s.ok()) return s;
  hiredis::Reply r;
  if (Status s = hiredis::Command(*conn, {"SENTINEL", "get-master-addr-by-name", options.master_name}, &r); !s.ok())
    return s;
  if (Status s = hiredis::FromErrorReply(r, "SENTINEL get-master-addr-by-name"); !s.ok()) return s;
  if (r.type == hiredis::Reply::Type::kNil)
    return Status(ErrorCode::kNotFound, "sentinel " + sentinel.ToString() + " does not monitor " + options.master_name);
  if (r.type != hiredis::Reply::Type::kArray || r.elements.size() != 2 || r.elements[0].str.empty() ||
      !ParsePort(r.elements[1].str, &master->port)) {
    return Status(ErrorCode::kInternal, "sentinel " + sentinel.ToString() + ": unexpected reply");
  }
  master->host = r.elements[0].str;
  return Status::Ok();
}

}  // namespace

Status AskSentinels(const SentinelOptions& options, size_t first, net::HostPort* master, size_t* answered) {
  const size_t n = options.sentinels.size();
  Status last(ErrorCode::kUnavailable, "no sentinel configured");
  for (size_t i = 0; i < n; ++i) {
    const size_t index = (first + i) % n;
    Status s = AskOne(options, options.sentinels[index], master);
    if (s.ok()) {
      if (answered != nullptr) *answered = index;
      return s;
    }
    last = s;
  }
  return Status(ErrorCode::kUnavailable, "no sentinel knows master " + options.master_name + ": " + last.message());
}

SentinelMaster::SentinelMaster(SentinelOptions options, prometheus::Counter* failovers)
    : options_(std::move(options)), failovers_metric_(failovers), thread_([this] { Run(); }) {}

SentinelMaster::~SentinelMaster() {
  stop_.store(true);
  thread_.join();
}

Status SentinelMaster::Current(net::HostPort* address, uint64_t* generation) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (!known_) return Status(ErrorCode::kUnavailable, "redis master not known yet (no sentinel has answered)");
  *address = master_;
  *generation = generation_;
  return Status::Ok();
}

void SentinelMaster::Suspect(uint64_t generation) {
  std::lock_guard<std::mutex> lock(mu_);
  if (known_ && generation != generation_) return;  // already moved on
  const auto soon = last_ask_ + options_.retry;
  if (soon < next_ask_) {
    next_ask_ = soon;
    rotate_ = true;
  }
}

void SentinelMaster::AskIfDue() {
  size_t first = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    if (now < next_ask_) return;
    if (rotate_) first_ = (first_ + 1) % options_.sentinels.size();
    rotate_ = false;
    first = first_;
    last_ask_ = now;
    next_ask_ = now + options_.retry;  // until an answer says otherwise
  }
  net::HostPort master;
  size_t answered = first;
  Status s = AskSentinels(options_, first, &master, &answered);
  if (!s.ok()) {
    if (answering_) log::Warn("redis", "sentinels do not answer; asking again").kv("err", s.ToString());
    answering_ = false;
    return;
  }
  answering_ = true;
  {
    std::lock_guard<std::mutex> lock(mu_);
    first_ = answered;
    next_ask_ = last_ask_ + options_.recheck;
  }
  Adopt(master, "asked");
}

void SentinelMaster::Adopt(const net::HostPort& address, const char* how) {
  net::HostPort old;
  bool failover = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (known_ && master_ == address) return;
    failover = known_;
    old = master_;
    master_ = address;
    known_ = true;
    ++generation_;
  }
  if (!failover) {
    log::Info("redis", "master found through sentinel").kv("master", address.ToString()).kv("name", options_.master_name);
    return;
  }
  failovers_.fetch_add(1);
  if (failovers_metric_ != nullptr) failovers_metric_->Increment();
  log::Warn("redis", "master changed: following the failover")
      .kv("from", old.ToString())
      .kv("to", address.ToString())
      .kv("via", how);
}

void SentinelMaster::OnSwitch(const std::string& payload) {
  std::istringstream in(payload);
  std::string name, old_host, old_port, host, port;
  net::HostPort master;
  if (!(in >> name >> old_host >> old_port >> host >> port) || !ParsePort(port, &master.port)) {
    log::Warn("redis", "ignoring a malformed +switch-master message").kv("payload", payload);
    return;
  }
  if (name != options_.master_name) return;
  master.host = host;
  Adopt(master, kSwitchChannel);
}

void SentinelMaster::Run() {
  for (size_t index = 0; !stop_.load(); ++index) {
    AskIfDue();
    const net::HostPort& sentinel = options_.sentinels[index % options_.sentinels.size()];
    std::unique_ptr<hiredis::Connection> conn;
    Status s = hiredis::Dial(sentinel, DialFor(options_), &conn);
    if (s.ok()) {
      s = hiredis::Subscribe(
          *conn, kSwitchChannel, stop_,
          [this] {
            subscribed_.store(true);
            // A switch may have happened while no subscription was up.
            std::lock_guard<std::mutex> lock(mu_);
            next_ask_ = last_ask_;
          },
          [this](const std::string& payload) { OnSwitch(payload); },
          [this] {
            AskIfDue();
            return true;
          });
    }
    subscribed_.store(false);
    if (stop_.load()) return;
    log::Debug("redis", "sentinel subscription down; trying the next sentinel")
        .kv("sentinel", sentinel.ToString())
        .kv("err", s.ToString());
    for (auto slept = std::chrono::milliseconds(0); slept < options_.retry && !stop_.load();
         slept += std::chrono::milliseconds(50)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
}

}  // namespace webtier::cache
