// The active health checker (see health_checker.h).
#include "webtier/balancer/health/health_checker.h"

#include <map>
#include <random>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include "engine/io.h"
#include "webtier/balancer/clock.h"
#include "webtier/common/log.h"

namespace webtier::balancer {

namespace {

constexpr const char* kComponent = "health";
constexpr uint64_t kMaxCheckBodyBytes = 64 * 1024;

}  // namespace

struct HealthChecker::Impl {
  Impl(const HealthOptions& o, Pool& p, ProxyMetrics* m) : options(o), pool(p), metrics(m) {}

  const HealthOptions options;
  Pool& pool;
  ProxyMetrics* metrics;
  asio::io_context ctx{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::thread thread;
  // A member's check loop, for Reconcile() to end it when the member leaves
  // (null until the loop has started).
  struct Loop {
    Timer* timer = nullptr;
    beast::tcp_stream* stream = nullptr;
  };
  std::map<const Member*, Loop> checking;  // members with a check loop; the checker's thread only
  std::mt19937_64 random{std::random_device{}()};

  // Starts a check loop for every member of the current generation without
  // one, and wakes the loops of members that left (they end at once, a
  // check under way abandoned).
  void Reconcile() {
    for (auto& [member, loop] : checking) {
      if (!member->removed() || loop.timer == nullptr) continue;
      loop.timer->cancel();
      loop.stream->cancel();
    }
    auto snap = pool.Snapshot();
    for (const auto& h : snap->members) {
      if (h->removed() || !checking.emplace(h.get(), Loop{}).second) continue;
      asio::co_spawn(ctx, CheckLoop(h), asio::detached);
    }
  }

  std::chrono::milliseconds NextInterval() {
    const int jitter = options.interval_ms / 10;
    return std::chrono::milliseconds(options.interval_ms +
                                     (jitter > 0 ? static_cast<int>(random() % (jitter + 1)) : 0));
  }

  // Checks `member` every NextInterval() of Clock (start to start) until it
  // leaves the pool.
  awaitable<void> CheckLoop(std::shared_ptr<Member> member) {
    beast::tcp_stream stream(ctx);
    beast::flat_buffer buffer;
    Timer timer(ctx);
    checking[member.get()] = Loop{&timer, &stream};
    HealthTracker tracker(options.healthy_threshold, options.unhealthy_threshold);
    while (!member->removed()) {
      const auto started = Clock::now();
      const CheckResult result = co_await CheckOnce(*member, stream, buffer);
      if (member->removed()) break;
      Publish(*member, tracker, result);
      timer.expires_at(started + NextInterval());
      auto [ec] = co_await timer.async_wait(kUse);
      if (ec) break;
    }
    checking.erase(member.get());
  }

  // One GET over `stream` (connected first when it is not open); a stream
  // the member will not keep open is closed after the answer.
  // The --health-timeout-ms is the tcp_stream's own timer: real time, not Clock.
  awaitable<CheckResult> CheckOnce(const Member& member, beast::tcp_stream& stream, beast::flat_buffer& buffer) {
    stream.expires_after(std::chrono::milliseconds(options.timeout_ms));
    error_code ec;
    if (!stream.socket().is_open()) {
      buffer.clear();
      std::tie(ec) = co_await stream.async_connect(member.endpoint(), kUse);
    }
    http::request<http::empty_body> req{http::verb::get, options.path, 11};
    req.set(http::field::host, member.serverset().Address());
    req.set(http::field::user_agent, "webtier-balancer-health");
    // A member that left while the last step completed: Reconcile's cancel
    // came before the next step began, so stop here rather than wait it out.
    if (!ec && member.removed()) ec = asio::error::operation_aborted;
    if (!ec) std::tie(ec, std::ignore) = co_await http::async_write(stream, req, kUse);
    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxCheckBodyBytes);
    if (!ec && member.removed()) ec = asio::error::operation_aborted;
    if (!ec) std::tie(ec, std::ignore) = co_await http::async_read(stream, buffer, parser, kUse);
    if (ec || !parser.get().keep_alive()) {
      error_code ignored;
      stream.socket().close(ignored);
    }
    if (ec == beast::error::timeout) co_return CheckResult::kTimeout;
    if (ec) co_return CheckResult::kFail;
    const int code = parser.get().result_int();
    co_return code >= 200 && code < 300 ? CheckResult::kPass : CheckResult::kFail;
  }

  void Publish(Member& member, HealthTracker& tracker, CheckResult result) {
    member.SetLastCheck(result);
    member.history.NoteCheck(result);
    if (metrics) metrics->health.CountCheck(member.serverset().id, result);
    const Health before = member.health();
    const Health after = tracker.Next(before, result == CheckResult::kPass);
    if (after == before) return;
    member.SetHealth(after, Clock::now());
    if (after == Health::kHealthy) {
      log::Info(kComponent, "member healthy").kv("member", member.serverset().id).kv("address", member.serverset().Address());
    } else {
      log::Warn(kComponent, after == Health::kUnhealthy ? "member unhealthy" : "member not checked yet")
          .kv("member", member.serverset().id)
          .kv("address", member.serverset().Address())
          .kv("check", CheckResultName(result));
    }
  }
};

HealthChecker::HealthChecker(const HealthOptions& options, Pool& pool, ProxyMetrics* metrics)
    : impl_(std::make_unique<Impl>(options, pool, metrics)) {
  if (!options.checks()) return;
  Impl* impl = impl_.get();
  pool.SetUpdateHook([impl] { asio::post(impl->ctx, [impl] { impl->Reconcile(); }); });
}

HealthChecker::~HealthChecker() {
  // Once this returns no update runs the hook: it may not post to `impl_` any more.
  if (impl_->options.checks()) impl_->pool.SetUpdateHook(nullptr);
  Stop();
}

void HealthChecker::Start() {
  if (!impl_->options.checks() || impl_->thread.joinable()) return;
  impl_->work.emplace(impl_->ctx.get_executor());
  asio::post(impl_->ctx, [impl = impl_.get()] { impl->Reconcile(); });
  impl_->thread = std::thread([impl = impl_.get()] { impl->ctx.run(); });
  log::Info(kComponent, "checking members")
      .kv("path", impl_->options.path)
      .kv("interval_ms", impl_->options.interval_ms)
      .kv("timeout_ms", impl_->options.timeout_ms);
}

void HealthChecker::Stop() {
  if (!impl_ || !impl_->thread.joinable()) return;
  impl_->ctx.stop();
  impl_->thread.join();
}

}  // namespace webtier::balancer
