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
  return {.connect_timeout = o.connect_timeout, .command_timeout = o.command_timeout, .password = o.password};
}

// The value after `key` in a flat [key, value, key, value, ...] reply.
const std::string* Field(const hiredis::Reply& r, std::string_view key) {
  for (size_t i = 0; i + 1 < r.elements.size(); i += 2) {
    if (r.elements[i].str == key) return &r.elements[i + 1].str;
  }
  return nullptr;
}

// One Sentinel's view of the master (SENTINEL MASTER <name>).
Status AskOne(const SentinelOptions& options, const net::HostPort& sentinel, SentinelAnswer* answer) {
  std::unique_ptr<hiredis::Connection> conn;
  if (Status s = hiredis::Dial(sentinel, DialFor(options), &conn); !s.ok()) return s;
  hiredis::Reply r;
  if (Status s = hiredis::Command(*conn, {"SENTINEL", "MASTER", options.master_name}, &r); !s.ok()) return s;
  const std::string who = "sentinel " + sentinel.ToString();
  if (Status s = hiredis::FromErrorReply(r, who); !s.ok()) return s;  // "ERR No such master with that name"
  const std::string* ip = Field(r, "ip");
  const std::string* port = Field(r, "port");
  const std::string* epoch = Field(r, "config-epoch");
  unsigned long long e = 0;
  if (ip == nullptr || ip->empty() || port == nullptr || !ParsePort(*port, &answer->master.port) ||
      epoch == nullptr || std::from_chars(epoch->data(), epoch->data() + epoch->size(), e).ec != std::errc()) {
    return Status(ErrorCode::kInternal, who + ": unexpected SENTINEL MASTER reply");
  }
  answer->master.host = *ip;
  answer->config_epoch = e;
  return Status::Ok();
}

}  // namespace

Status AskSentinels(const SentinelOptions& options, SentinelAnswer* answer) {
  size_t answered = 0;
  Status last(ErrorCode::kUnavailable, "no sentinel configured");
  for (const net::HostPort& sentinel : options.sentinels) {
    SentinelAnswer one;
    Status s = AskOne(options, sentinel, &one);
    if (!s.ok()) {
      last = s;
      continue;
    }
    if (answered++ == 0 || one.config_epoch > answer->config_epoch) *answer = one;
  }
  answer->from_all = answered == options.sentinels.size();
  if (answered > 0) return Status::Ok();
  return Status(ErrorCode::kUnavailable, "no sentinel knows master " + options.master_name + ": " + last.message());
}

SentinelMaster::SentinelMaster(SentinelOptions options, prometheus::Counter* failovers, prometheus::Counter* rejected)
    : options_(std::move(options)),
      failovers_metric_(failovers),
      rejected_metric_(rejected),
      thread_([this] { Run(); }) {}

SentinelMaster::~SentinelMaster() {
  stop_.store(true);
  thread_.join();
}

Status SentinelMaster::Current(net::HostPort* address, uint64_t* generation) const {
  MutexLock lock(&mu_);
  if (!known_) return Status(ErrorCode::kUnavailable, "redis master not known yet (no sentinel has answered)");
  *address = master_;
  *generation = generation_;
  return Status::Ok();
}

void SentinelMaster::Suspect(uint64_t generation) {
  MutexLock lock(&mu_);
  if (known_ && generation != generation_) return;  // already moved on
  next_ask_ = std::min(next_ask_, last_ask_ + options_.retry);
}

void SentinelMaster::AskIfDue() {
  {
    MutexLock lock(&mu_);
    const auto now = std::chrono::steady_clock::now();
    if (now < next_ask_) return;
    last_ask_ = now;
    next_ask_ = now + options_.retry;  // until an answer says otherwise
  }
  SentinelAnswer answer;
  Status s = AskSentinels(options_, &answer);
  if (!s.ok()) {
    if (answering_) log::Warn("redis", "sentinels do not answer; asking again").kv("err", s.ToString());
    answering_ = false;
    return;
  }
  answering_ = true;
  if (!Confirm(answer.master).ok()) return;  // asked again within `retry`
  {
    MutexLock lock(&mu_);
    next_ask_ = last_ask_ + options_.recheck;
  }
  Adopt(answer);
}

Status SentinelMaster::Confirm(const net::HostPort& master) {
  bool held = false;
  {
    MutexLock lock(&mu_);
    // Confirmed when adopted; from then on every new store connection checks
    // ROLE again (RedisStore), so a later demotion is caught there.
    held = known_ && master_ == master;
  }
  if (held) {
    last_rejected_.clear();  // a rejected address named again later is logged again
    return Status::Ok();
  }
  std::unique_ptr<hiredis::Connection> conn;
  hiredis::DialOptions dial{.connect_timeout = options_.connect_timeout,
                            .command_timeout = options_.command_timeout,
                            .password = options_.redis_password};
  std::string role;
  Status s = hiredis::Dial(master, dial, &conn);
  if (s.ok()) s = hiredis::CheckIsMaster(*conn, master, &role);
  if (s.ok()) {
    last_rejected_.clear();
    return s;
  }
  rejected_.fetch_add(1);
  if (rejected_metric_ != nullptr) rejected_metric_->Increment();
  const std::string address = master.ToString();
  if (last_rejected_ != address) {
    last_rejected_ = address;
    log::Warn("redis", "sentinel names a master that does not confirm it; not using it")
        .kv("master", address)
        .kv("role", role.empty() ? "unknown" : role)
        .kv("err", s.ToString());
  }
  return s;
}

void SentinelMaster::Adopt(const SentinelAnswer& answer) {
  net::HostPort old;
  bool failover = false;
  {
    MutexLock lock(&mu_);
    // An older configuration (a Sentinel that missed the failover) never
    // sends the node back to a former master, unless all of them say so.
    if (known_ && answer.config_epoch < epoch_ && !answer.from_all) return;
    epoch_ = answer.config_epoch;
    if (known_ && master_ == answer.master) return;
    failover = known_;
    old = master_;
    master_ = answer.master;
    known_ = true;
    ++generation_;
  }
  const std::string address = answer.master.ToString();
  if (!failover) {
    log::Info("redis", "master found through sentinel").kv("master", address).kv("name", options_.master_name);
    return;
  }
  failovers_.fetch_add(1);
  if (failovers_metric_ != nullptr) failovers_metric_->Increment();
  log::Warn("redis", "master changed: following the failover")
      .kv("from", old.ToString())
      .kv("to", address)
      .kv("config_epoch", answer.config_epoch);
}

void SentinelMaster::OnSwitch(const std::string& payload) {
  // The message carries no epoch: ask every Sentinel now (the one that sent
  // it already has the new configuration, with its higher epoch).
  std::istringstream in(payload);
  std::string name;
  if (!(in >> name) || name != options_.master_name) return;
  log::Debug("redis", "+switch-master: asking the sentinels").kv("payload", payload);
  MutexLock lock(&mu_);
  next_ask_ = last_ask_;
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
            MutexLock lock(&mu_);
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
