// One request forwarded to the members with retries (see exchange.h).
#include "engine/exchange.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <span>

#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>

#include "engine/h2_session.h"
#include "engine/reactor_hints.h"
#include "engine/relay.h"
#include "engine/send_batch.h"
#include "engine/tunnel.h"
#include "webtier/balancer/telemetry/access_log.h"
#include "webtier/common/log.h"
#include "webtier/common/net.h"
#include "webtier/common/trace_context.h"

namespace webtier::balancer {

namespace {

constexpr const char* kComponent = "proxy";
constexpr uint32_t kMaxUpstreamHeaderBytes = 64 * 1024;
constexpr size_t kMaxInterim = 16;  // 1xx answers before the final one; more: the member is misbehaving

// A failure to read a response header, by whether any of it had come.
Failure ResponseFailure(error_code ec, bool started) {
  if (ec == beast::error::timeout) return started ? Failure::kSlowResponse : Failure::kNoResponse;
  return started ? Failure::kResetMidResponse : Failure::kResetBeforeResponse;
}

// The access log's flag for a failed attempt.
uint32_t FailureFlag(Failure failure) {
  switch (failure) {
    case Failure::kConnect: return kConnectFailed;
    case Failure::kSendTimeout:
    case Failure::kNoResponse:
    case Failure::kSlowResponse:
    case Failure::kBodyTimeout: return kMemberTimeout;
    case Failure::kMemberUnhealthy: return kMemberUnhealthy;
    case Failure::kSendReset:
    case Failure::kBodyReset:
    case Failure::kResetBeforeResponse:
    case Failure::kResetMidResponse: return kMemberReset;
  }
  return kMemberReset;
}

}  // namespace

Exchange::Exchange(WorkerContext& worker, ClientConnection& client, http::request<http::string_body>& request,
                   const std::string& client_ip, StreamedBody* streamed, bool keep_alive)
    : worker_(worker),
      conn_(client),
      req_(request),
      client_ip_(client_ip),
      streamed_(streamed),
      // An error answered while the client is still sending its body ends the
      // connection: the rest of the body is not read.
      keep_alive_(keep_alive && streamed == nullptr),
      header_keep_alive_(keep_alive),
      logging_(worker.access_log != nullptr) {}

void Exchange::PrepareRequest() {
  WriteRequestId(request_id_storage_);
  NewTrace(&trace_);
  UpstreamBody framing;
  if (streamed_ != nullptr) {
    framing.streamed = true;
    framing.length = streamed_->length;
  }
  // A request without Host (HTTP/1.0) targets the address it came to.
  std::string authority;
  if (req_.count(http::field::host) == 0) {
    error_code ec;
    const tcp::endpoint local = conn_.stream.socket().local_endpoint(ec);
    if (!ec) authority = net::HostPort{local.address().to_string(), local.port()}.ToString();
  }
  request_id_ = SerializeUpstreamRequest(req_, client_ip_, std::string_view(request_id_storage_, kRequestIdLength),
                                         conn_.request_head, framing, conn_.stream.tls(), authority,
                                         worker_.config.replace_request_id, &trace_);
  request_parts_ = {asio::buffer(conn_.request_head), asio::buffer(req_.body())};
  request_part_count_ = 2;
  if (streamed_ != nullptr && streamed_->chunked() && !req_.body().empty()) {
    const auto chunk = Chunk(asio::buffer(req_.body()), chunk_header_);
    request_parts_ = {asio::buffer(conn_.request_head), chunk[0], chunk[1], chunk[2]};
    request_part_count_ = 4;
  }
}

namespace {

// A member's share of the requests in flight, for the least_request policy,
// while one attempt runs.
class InFlight {
 public:
  explicit InFlight(Member& member) : member_(member) { member_.in_flight.fetch_add(1, std::memory_order_relaxed); }
  ~InFlight() { member_.in_flight.fetch_sub(1, std::memory_order_relaxed); }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

 private:
  Member& member_;
};

// Unhooks the watchdog from the member connection when an attempt ends.
class Unwatch {
 public:
  explicit Unwatch(ClientConnection& conn) : conn_(conn) {}
  ~Unwatch() { conn_.ClearUpstream(); }
  Unwatch(const Unwatch&) = delete;
  Unwatch& operator=(const Unwatch&) = delete;

 private:
  ClientConnection& conn_;
};

}  // namespace

awaitable<ExchangeOutcome> Exchange::Run() {
  if (worker_.edge != nullptr) {
    if (const std::shared_ptr<const edge::EdgeObject> hit = LookUpEdge()) co_return co_await AnswerFromEdge(*hit);
  }
  // Keep the generation alive across suspensions even if the pool moves on.
  hold_ = worker_.Snapshot();
  members_ = hold_.get();
  if (members_->members.empty()) {
    log_.flags |= kNoMember;
    co_return ExchangeOutcome{503, "no members", false, keep_alive_};
  }
  PrepareRequest();
  pick_key_ = std::string_view(req_.target().data(), req_.target().size());
  if (auto q = pick_key_.find('?'); q != std::string_view::npos) pick_key_ = pick_key_.substr(0, q);
  // A streamed body cannot be sent twice: once it is under way (its first
  // part accepted by a member), no retry.
  // An Upgrade request is sent once: after a reset the member may have
  // switched already (only a failed connect moves it on).
  upgrade_ = IsUpgradeRequest(req_);
  Attempt attempt{IsIdempotent(req_.method()) && !upgrade_, streamed_ == nullptr};
  for (; attempt.number < worker_.retry.max_attempts(); ++attempt.number) {
    Member* member = NextMember(attempt);
    if (member == nullptr) break;
    const InFlight in_flight(*member);
    std::unique_ptr<UpstreamConnection> up;
    // Declared after `up`: unhooks the watchdog before the connection goes.
    const Unwatch unwatch(conn_);
    ResponseFraming framing;
    Step step = co_await Send(*member, attempt, up);
    if (step == Step::kOn) step = co_await ReadAnswerHead(*member, attempt, *up);
    if (step == Step::kOn) step = CheckAnswer(*member, attempt, framing);
    if (step == Step::kOn) co_return co_await Deliver(up, framing);
    if (step == Step::kClientFailed) co_return ExchangeOutcome{};
    if (step == Step::kGiveUp) break;
  }
  co_return GiveUp();
}

Member* Exchange::NextMember(Attempt& attempt) {
  if (tried_count_ == kMaxTried) return nullptr;
  Member* member = members_->Pick(pick_key_, std::span<Member* const>(tried_, tried_count_), Clock::now());
  if (member == nullptr) {
    if (tried_count_ == 0) log_.flags |= kNoHealthyMember;
    return nullptr;
  }
  tried_[tried_count_++] = member;
  log_.member = member;
  log_.attempts = static_cast<int>(tried_count_);
  if (worker_.spans != nullptr && log_.noted_count < ExchangeLog::kNotedAttempts) {
    log_.noted[log_.noted_count++] = {member, std::chrono::system_clock::now(), 0};
  }
  log_.connect_ms = log_.upstream_ms = -1;
  attempt.untried = std::min(members_->members.size(), kMaxTried) - tried_count_;
  if (attempt.number > 0) worker_.metrics.retries.Increment();
  else CountLocality(*member);
  member->requests.fetch_add(1, std::memory_order_relaxed);
  return member;
}

awaitable<Exchange::Step> Exchange::Send(Member& member, const Attempt& attempt,
                                         std::unique_ptr<UpstreamConnection>& up) {
  // A streamed body gets a fresh connection: on a pooled one that the
  // member has meanwhile closed, the failure would show only after the
  // body has been consumed, too late for a retry.
  // A client connection's first request gets a member connection of its
  // own (HAProxy's `http-reuse safe`): whatever a member sent after an
  // earlier answer on a pooled connection can never become the first
  // thing a new client reads. Later requests of the same client may reuse.
  const bool may_reuse = streamed_ == nullptr && (conn_.requests > 1 || worker_.config.reuse_always);
  if (may_reuse) up = worker_.idle_connections.TakeIdle(&member);
  if (!up) {
    error_code cec;
    const auto connect_start = logging_ ? Clock::now() : Clock::time_point();
    up = co_await Connect(member, cec);
    if (logging_) log_.connect_ms = std::chrono::duration<double, std::milli>(Clock::now() - connect_start).count();
    if (!up) co_return AfterFailure(Failure::kConnect, member, attempt, cec);
  }

  sent_ = Clock::now();  // the status page's latency, the access log's upstream_ms
  conn_.SetUpstreamDeadline(&up->stream, worker_.retry.AttemptTimeout(attempt));
  const std::span<const asio::const_buffer> request_bytes(request_parts_.data(), request_part_count_);
  const error_code wec = conn_.UpstreamError(co_await SendToMember(&worker_.member_sends, up->stream, request_bytes));
  if (wec) {  // the connection closes with `up`
    co_return AfterFailure(wec == beast::error::timeout ? Failure::kSendTimeout : Failure::kSendReset, member, attempt,
                           wec);
  }
  if (streamed_ == nullptr) co_return Step::kOn;
  const error_code sec = co_await StreamBody(*up);
  // The session answers the client; the member's connection closes with `up`.
  if (streamed_->client_error) co_return Step::kClientFailed;
  if (sec) {
    co_return AfterFailure(sec == beast::error::timeout ? Failure::kBodyTimeout : Failure::kBodyReset, member, attempt,
                           sec);
  }
  keep_alive_ = header_keep_alive_ && !worker_.draining();  // the body is all read
  // The response is due within the request timeout of the body's end.
  conn_.SetUpstreamDeadline(&up->stream, worker_.timeouts.request);
  co_return Step::kOn;
}

awaitable<Exchange::Step> Exchange::ReadAnswerHead(Member& member, const Attempt& attempt, UpstreamConnection& up) {
  // Waiting for the answer: a member that fails its checks meanwhile is
  // left for another (the watchdog cuts the wait short).
  if (worker_.retry.Movable(attempt)) conn_.move_if_unhealthy = &member;
  error_code rec;
  size_t received = 0;
  size_t interim = 0;
  for (;;) {  // interim 1xx responses: relayed to an HTTP/1.1 client (100 Continue was the balancer's own)
    answer_.emplace();
    answer_->header_limit(kMaxUpstreamHeaderBytes);
    answer_->body_limit(boost::none);
    if (req_.method() == http::verb::head) answer_->skip(true);
    rec = conn_.UpstreamError(co_await ReadMessage(up.stream, up.buffer, *answer_, HeaderIn(*answer_), &received));
    if (rec) break;
    const int code = answer_->get().result_int();
    if (code < 100 || code >= 200 || code == 101) co_return Step::kOn;
    if (++interim > kMaxInterim) {
      rec = http::error::bad_status;
      break;
    }
    if (code != 100 && req_.version() >= 11) {
      rec = co_await RelayInterim(answer_->get());
      if (rec) break;
    }
  }
  const bool started = received != 0 || up.buffer.size() != 0;
  const Failure failure = conn_.upstream_unhealthy && !started ? Failure::kMemberUnhealthy : ResponseFailure(rec, started);
  co_return AfterFailure(failure, member, attempt, rec);
}

Exchange::Step Exchange::CheckAnswer(Member& member, const Attempt& attempt, ResponseFraming& framing) {
  const http::response_header<>& head = answer_->get();
  const int code = head.result_int();
  log_.upstream_ms = std::chrono::duration<double, std::milli>(Clock::now() - sent_).count();
  const auto cache = head["X-Cache"];
  log_.cache_length = std::min(cache.size(), sizeof log_.cache);
  // No X-Cache: an empty view whose data() may be null, which memcpy must not see.
  if (log_.cache_length != 0) std::memcpy(log_.cache, cache.data(), log_.cache_length);
  if (code == 101 && !upgrade_) {  // a switch nobody asked for: the connection is unusable
    (void)AfterFailure(Failure::kResetMidResponse, member, attempt, http::error::bad_status);
    return Step::kGiveUp;
  }
  // An HTTP/2 WebSocket stream's key was the balancer's: so is the check
  // an HTTP/1.1 client makes of the answer (RFC 6455 4.1).
  if (code == 101 && conn_.h2 != nullptr &&
      head[http::field::sec_websocket_accept] != WebSocketAccept(std::string_view(req_[http::field::sec_websocket_key]))) {
    RefuseResponse(member, "member switched without accepting the WebSocket key");
    return Step::kGiveUp;
  }
  // A 2xx to one is what its client takes for an open tunnel (RFC 8441 5):
  // a member that answers it without switching must not pass for one.
  if (conn_.h2 != nullptr && upgrade_ && code >= 200 && code < 300) {
    RefuseResponse(member, "member answered a WebSocket request without switching");
    return Step::kGiveUp;
  }
  framing = CheckResponseFraming(head);
  if (framing.ok() && !framing.codings.empty() && req_.method() != http::verb::head) {
    if (req_.version() < 11) framing.why = "member sent transfer codings an HTTP/1.0 client cannot receive";
    else if (conn_.h2 != nullptr) framing.why = "member sent transfer codings an HTTP/2 client cannot receive";
  }
  if (!framing.ok()) {
    RefuseResponse(member, framing.why);
    return Step::kGiveUp;
  }
  member.Count(Outcome::kOk);
  // Decided on the status line, before any of the body is relayed.
  return RetryAfterAnswer(code, member, attempt) ? Step::kNextMember : Step::kOn;
}

awaitable<ExchangeOutcome> Exchange::Deliver(std::unique_ptr<UpstreamConnection>& up, const ResponseFraming& framing) {
  const int code = answer_->get().result_int();
  const bool upstream_keep = answer_->get().keep_alive();
  conn_.ClearUpstream();
  const EdgeTap tap = worker_.edge != nullptr ? EdgeBeforeRelay() : EdgeTap{};
  if (conn_.h2 != nullptr && code == 101) {  // a WebSocket stream: 200, then the session tunnels
    OpenStreamTunnel(*conn_.h2, answer_->get(), request_id_);
    log_.flags |= kUpgraded;
    ExchangeOutcome outcome{200, {}, true, false};
    outcome.tunnel = std::move(up);
    co_return outcome;
  }
  if (conn_.h2 != nullptr) {
    const bool whole = co_await RelayResponseToStream(*conn_.h2, *up, *answer_, req_.method() == http::verb::head,
                                                      request_id_, worker_.relay_buffers, tap);
    if (worker_.edge != nullptr) EdgeAfterRelay(whole);
    if (whole && upstream_keep && up->buffer.size() == 0) worker_.idle_connections.ReturnIdle(std::move(up));
    co_return ExchangeOutcome{code, {}, true, true};
  }
  if (code == 101) co_return co_await SwitchProtocols(std::move(up), answer_->get());
  RelayedResponse relayed{conn_,          *up,           *answer_, req_.method() == http::verb::head, req_.version(),
                          request_id_, keep_alive_, framing.codings, tap, &worker_.metrics};
  const bool reusable = co_await RelayResponse(relayed, worker_.timeouts, worker_.relay_buffers);
  if (worker_.edge != nullptr) EdgeAfterRelay(reusable);
  keep_alive_ = relayed.keep_alive;
  // After an Upgrade request the member may have switched anyway.
  if (reusable && upstream_keep && !upgrade_ && up->buffer.size() == 0)
    worker_.idle_connections.ReturnIdle(std::move(up));
  co_return ExchangeOutcome{code, {}, true, keep_alive_};
}

std::shared_ptr<const edge::EdgeObject> Exchange::LookUpEdge() {
  edge::EdgeCache& cache = *worker_.edge;
  edge_request_ = edge::ClassifyRequest(req_, conn_.stream.tls());
  edge_request_ms_ = cache.clock().UnixMillis();
  if (edge_request_.lookup) {
    edge_lookup_ = cache.Find(edge_request_.site, edge_request_.url,
                              [this](const cache::Vary& vary) { return edge::SelectingFields(req_, vary); });
    if (edge_lookup_.kind == edge::Lookup::Kind::kHit &&
        edge::Acceptable(edge_request_, *edge_lookup_.object, edge_request_ms_)) {
      return edge_lookup_.object;
    }
    if (edge_lookup_.kind == edge::Lookup::Kind::kHit) edge_lookup_.kind = edge::Lookup::Kind::kMiss;
  } else if (edge_request_.store) {
    edge_lookup_.epoch = cache.EpochOf(edge_request_.url);
  }
  return nullptr;
}

awaitable<ExchangeOutcome> Exchange::AnswerFromEdge(const edge::EdgeObject& object) {
  // The client's X-Request-Id (--request-id keep), else a new one.
  request_id_ = {};
  if (!worker_.config.replace_request_id) {
    for (auto [it, end] = req_.equal_range("X-Request-Id"); it != end && request_id_.empty(); ++it)
      request_id_ = std::string_view(it->value().data(), it->value().size());
  }
  if (request_id_.empty()) {
    WriteRequestId(request_id_storage_);
    request_id_ = std::string_view(request_id_storage_, kRequestIdLength);
  }
  if (logging_ || worker_.spans != nullptr) NewTrace(&trace_);
  log_.flags |= kEdgeHit;
  log_.cache_length = 3;
  std::memcpy(log_.cache, "HIT", 3);
  const int64_t now_ms = worker_.edge->clock().UnixMillis();
  bool with_body = false;
  if (conn_.h2 != nullptr) {
    std::string& made = conn_.request_head;  // free while no member is asked
    std::vector<H2Field>& fields = conn_.h2->session.fields();
    const int status = edge::HitFields(object, req_, now_ms, request_id_, fields, made, &with_body);
    AnswerStreamFromMemory(*conn_.h2, status, fields, with_body ? std::string_view(object.response.body) : "");
    co_return ExchangeOutcome{status, {}, true, true};
  }
  const int status =
      edge::SerializeHit(object, req_, now_ms, keep_alive_, request_id_, conn_.response_head, &with_body);
  const std::array<asio::const_buffer, 2> out{asio::buffer(conn_.response_head),
                                              asio::buffer(object.response.body.data(),
                                                           with_body ? object.response.body.size() : 0)};
  conn_.SetDeadline(worker_.timeouts.idle);
  const error_code ec = co_await WriteAll(conn_.stream, out);
  conn_.ClearDeadline();
  if (ec) keep_alive_ = false;
  co_return ExchangeOutcome{status, {}, true, keep_alive_};
}

EdgeTap Exchange::EdgeBeforeRelay() {
  edge::EdgeCache& cache = *worker_.edge;
  const http::response_header<>& head = answer_->get();
  const int code = head.result_int();
  if (edge_request_.unsafe) {
    // RFC 9111 4.4: before the client learns of the change, this balancer forgets the old answer.
    if (code >= 200 && code < 400) {
      cache.Erase(edge_request_.url);
      for (const std::string& url : edge::InvalidatedBy(head, edge_request_)) cache.Erase(url);
    }
    return {};
  }
  if (!edge_request_.lookup && !edge_request_.store) return {};
  EdgeTap tap;
  tap.cache_status = edge_lookup_.kind == edge::Lookup::Kind::kRefresh ? edge::kForwardedStale : edge::kForwardedMiss;
  if (edge_request_.store && !answer_->chunked() && worker_.edge->MayOffer(edge_lookup_, edge_request_.lookup)) {
    std::optional<uint64_t> length;
    if (const auto l = answer_->content_length()) length = *l;
    edge_object_ = edge::ObjectFor(head, length, edge_request_, req_, edge_request_ms_,
                                   cache.clock().UnixMillis(), cache.options().max_object_bytes);
    if (edge_object_) tap.capture = &edge_object_->response.body;
  }
  return tap;
}

void Exchange::EdgeAfterRelay(bool whole) {
  edge::EdgeCache& cache = *worker_.edge;
  const bool complete = whole && edge_object_ && answer_->content_length() &&
                        edge_object_->response.body.size() == *answer_->content_length();
  if (complete) {
    cache.Insert(std::move(edge_object_), edge_lookup_.epoch);
  } else if (edge_lookup_.kind == edge::Lookup::Kind::kRefresh && whole && !edge_object_) {
    cache.Drop(edge_lookup_.object);  // the tier no longer gives it out as it was
  }
  edge_object_.reset();
}

ExchangeOutcome Exchange::GiveUp() {
  if (conn_.client_gone) {
    log_.flags |= kClientGone;
    log::Debug(kComponent, "client gone; request abandoned").kv("target", req_.target()).kv("attempts", tried_count_);
    return ExchangeOutcome{};
  }
  if (status_ == 502) {
    log::Warn(kComponent, "no member answered").kv("target", req_.target()).kv("attempts", tried_count_).kv("err", error_);
  }
  return ExchangeOutcome{status_, error_, false, keep_alive_};
}

awaitable<ExchangeOutcome> Exchange::SwitchProtocols(std::unique_ptr<UpstreamConnection> up,
                                                     const http::response_header<>& head) {
  SerializeResponseHead(head, 11, false, BodyFraming::kAsIs, request_id_, conn_.response_head);
  conn_.SetDeadline(worker_.timeouts.idle);
  const error_code ec = co_await WriteAll(conn_.stream, asio::buffer(conn_.response_head));
  conn_.ClearDeadline();
  ExchangeOutcome outcome{101, {}, true, false};
  log_.flags |= kUpgraded;
  if (!ec) outcome.tunnel = std::move(up);  // else the member's connection closes with `up`
  co_return outcome;
}

awaitable<error_code> Exchange::RelayInterim(const http::response_header<>& head) {
  if (conn_.h2 != nullptr) {
    RelayInterimToStream(*conn_.h2, head);
    worker_.metrics.interim_responses.Increment();
    co_return error_code{};
  }
  SerializeInterimHead(head, conn_.response_head);
  // The member's deadline stays armed for the final answer; the write to
  // the client has the idle timeout like every other.
  conn_.SetDeadline(worker_.timeouts.idle);
  const error_code ec = co_await WriteAll(conn_.stream, asio::buffer(conn_.response_head));
  conn_.ClearDeadline();
  if (!ec) worker_.metrics.interim_responses.Increment();
  co_return ec;
}

void Exchange::RefuseResponse(Member& member, std::string_view why) {
  member.Count(Outcome::kReset);
  worker_.metrics.refused_responses.Increment();
  CountFailedAnswer(member, why);
  log::Warn(kComponent, "member response refused").kv("member", member.serverset().id).kv("detail", why);
  status_ = 502;
  error_ = "member sent a response the balancer cannot relay";
  log_.flags |= kResponseRefused;
}

Exchange::Step Exchange::AfterFailure(Failure failure, Member& member, const Attempt& attempt, error_code ec) {
  // Not the member's failure: the watchdog cut it short for a client that left.
  if (conn_.client_gone) return Step::kGiveUp;
  const RetryDecision d = worker_.retry.Decide(failure, attempt);
  member.Count(d.outcome);
  log_.flags |= FailureFlag(failure);
  if (log_.noted_count > 0) log_.noted[log_.noted_count - 1].failure |= FailureFlag(failure);
  if (failure == Failure::kConnect) member.RecordOutlierFailure(worker_.config.health.outlier_consecutive_5xx);
  if (d.eject) {
    const std::string_view reason = d.outcome == Outcome::kConnectFailure ? "connect_failure" : "timeout";
    Eject(member, reason, d.eject_reason.empty() ? std::string_view(ec.message()) : d.eject_reason, std::nullopt);
  }
  if (d.log == FailureLog::kUpstreamTimeout) {
    log::Warn(kComponent, "upstream timeout").kv("member", member.serverset().id).kv("target", req_.target());
  } else if (d.log == FailureLog::kFailedMidResponse) {
    log::Warn(kComponent, "upstream failed mid-response").kv("member", member.serverset().id).kv("err", ec.message());
  }
  status_ = d.status;
  error_ = d.error;
  return d.retry ? Step::kNextMember : Step::kGiveUp;
}

bool Exchange::RetryAfterAnswer(int code, Member& member, const Attempt& attempt) {
  if (code < 500) {
    member.RecordSuccess();
    return false;
  }
  CountFailedAnswer(member, "consecutive 5xx answers");
  if (!worker_.retry.RetriesStatus(code, attempt)) return false;
  log_.flags |= kMember5xx;
  log::Debug(kComponent, "member answered a gateway error; retrying elsewhere")
      .kv("member", member.serverset().id)
      .kv("status", code)
      .kv("target", req_.target());
  status_ = code;
  error_ = "no member answered";
  return true;
}

void Exchange::CountFailedAnswer(Member& member, std::string_view why) {
  const auto& options = worker_.config.health;
  if (member.RecordOutlierFailure(options.outlier_consecutive_5xx)) {
    const auto base = std::chrono::milliseconds(options.outlier_base_ejection_ms);
    Eject(member, "5xx", why, OutlierEjectionTime(base, member.ejection_count() + 1));
  }
}

void Exchange::Eject(Member& member, std::string_view reason, std::string_view why,
                     std::optional<std::chrono::milliseconds> duration) {
  if (!members_->TryEject(member, Clock::now(), duration)) return;
  member.history.NoteEjection(reason, why,
                            std::chrono::duration_cast<std::chrono::milliseconds>(member.ejected_until() - Clock::now()));
  worker_.metrics.ejections.Increment();
  worker_.metrics.health.CountEjection(member.serverset().id, reason);
  log::Warn(kComponent, "member ejected")
      .kv("member", member.serverset().id)
      .kv("address", member.serverset().Address())
      .kv("reason", reason)
      .kv("err", why)
      .kv("for_ms", std::chrono::duration_cast<std::chrono::milliseconds>(member.ejected_until() - Clock::now()).count());
}

void Exchange::CountLocality(const Member& member) {
  if (members_->options.zone.empty()) worker_.metrics.health.CountLocality(Locality::kNone);
  else worker_.metrics.health.CountLocality(members_->Local(member) ? Locality::kLocal : Locality::kRemote);
}

awaitable<std::unique_ptr<UpstreamConnection>> Exchange::Connect(Member& member, error_code& error) {
  auto up = std::make_unique<UpstreamConnection>(worker_.io, member.shared_from_this());
  // Opened first so that it is registered for the member's FIN before any
  // byte can arrive (reactor_hints.h), by the connect's own registration.
  up->stream.open(member.endpoint().protocol(), error);
  if (error) co_return nullptr;
  // Non-blocking from the start (WriteAll writes from the handler): the
  // connect then needs no switch of its own.
  up->stream.non_blocking(true, error);
  if (error) co_return nullptr;
  PrepareToWatchPeerShutdown(up->stream);
  conn_.SetUpstreamDeadline(&up->stream, worker_.timeouts.connect);
  auto [ec] = co_await up->stream.async_connect(member.endpoint(), kUse);
  error = conn_.UpstreamError(ec);
  conn_.ClearUpstream();
  if (error) co_return nullptr;
  WatchPeerShutdown(up->stream);
  error_code ignored;
  up->stream.set_option(tcp::no_delay(true), ignored);
  co_return up;
}

awaitable<error_code> Exchange::StreamBody(UpstreamConnection& up) {
  if (conn_.h2 != nullptr) {
    co_return co_await StreamBodyFromStream(*conn_.h2, up, streamed_->chunked(), streamed_->deadline,
                                            streamed_->client_error);
  }
  auto& parser = *streamed_->parser;
  std::string& body = parser.get().body();
  const bool chunked = streamed_->chunked();
  const auto request_timeout = worker_.timeouts.request;
  body.clear();  // the part before the head went with it
  // Waiting on the client is the client deadline's business; each write to
  // the member has its own deadline.
  auto write = [&](const auto& buffers) -> awaitable<error_code> {
    conn_.SetUpstreamDeadline(&up.stream, request_timeout);
    const error_code ec = co_await WriteAll(up.stream, buffers);
    conn_.ClearUpstream();
    co_return ec ? conn_.UpstreamError(ec) : ec;
  };
  conn_.ClearUpstream();
  while (!parser.is_done()) {
    // Each read may wait the request timeout, but none past the body's
    // deadline: a trickle cannot keep the body open forever.
    conn_.SetDeadline(request_timeout, streamed_->deadline);
    const error_code cec = co_await ReadMessage(
        conn_.stream, *streamed_->buffer, parser, [&] { return parser.is_done() || !body.empty(); }, nullptr,
        streamed_->trailer_limit);
    conn_.ClearDeadline();
    if (const error_code client_error = streamed_->BodyError(conn_.ClientError(cec))) {
      streamed_->client_error = client_error;
      co_return error_code{};
    }
    if (body.empty()) continue;
    char size_line[20];
    const error_code wec =
        chunked ? co_await write(Chunk(asio::buffer(body), size_line)) : co_await write(asio::buffer(body));
    if (wec) co_return wec;
    body.clear();
  }
  if (chunked) co_return co_await write(LastChunk());
  co_return error_code{};
}

void DescribeRequest(const http::request_header<>& head, AccessRecord& r) {
  r.method = std::string_view(head.method_string().data(), head.method_string().size());
  r.path = std::string_view(head.target().data(), head.target().size());
  const auto host = head[http::field::host];
  r.authority = std::string_view(host.data(), host.size());
  const auto agent = head[http::field::user_agent];
  r.user_agent = std::string_view(agent.data(), agent.size());
}

void ExportRequestSpan(WorkerContext& worker, const http::request_header<>* head, std::string_view protocol_version,
                       Clock::time_point start, const std::string& client_ip, int status, uint32_t flags,
                       const Exchange* exchange) {
  const bool prepared = exchange != nullptr && exchange->prepared();
  if (!prepared && head == nullptr) return;  // an unreadable request: no trace to put it in
  // A request that reached no member made no trace context: its span goes
  // on with the client's trace (one valid traceparent) or starts one.
  RequestTrace own;
  if (!prepared) {
    const auto range = head->equal_range("traceparent");
    std::optional<TraceParent> parent;
    if (range.first != range.second && std::next(range.first) == range.second) {
      const auto value = range.first->value();
      parent = ParseTraceparent(std::string_view(value.data(), value.size()));
    }
    own = ChildOf(parent);
  }
  const RequestTrace& trace = prepared ? exchange->trace() : own;
  const auto now = std::chrono::system_clock::now();
  otlp::Span span;
  span.trace_id.assign(trace.trace_id, kTraceIdLength);
  span.span_id.assign(trace.span_id, kSpanIdLength);
  if (trace.continued) span.parent_span_id.assign(trace.parent_id, kSpanIdLength);
  span.kind = otlp::SpanKind::kServer;
  span.end = now;
  span.start = now - std::chrono::duration_cast<std::chrono::system_clock::duration>(Clock::now() - start);
  std::vector<otlp::Attribute>& a = span.attributes;
  if (head != nullptr) {
    span.name = std::string(head->method_string());
    a.push_back({"http.request.method", span.name});
    a.push_back({"url.path", std::string(head->target())});
    a.push_back({"server.address", std::string((*head)[http::field::host])});
    a.push_back({"network.protocol.version", std::string(protocol_version)});
  }
  a.push_back({"client.address", client_ip});
  if (status != 0) a.push_back({"http.response.status_code", static_cast<int64_t>(status)});
  if (prepared) a.push_back({"webtier.request_id", std::string(exchange->request_id())});
  const ExchangeLog empty{};
  const ExchangeLog& log = exchange != nullptr ? exchange->log() : empty;
  a.push_back({"webtier.attempts", static_cast<int64_t>(log.attempts)});
  if (log.member != nullptr) a.push_back({"webtier.member", log.member->serverset().id});
  if (const std::string f = AccessFlagsText(flags | log.flags); !f.empty()) a.push_back({"webtier.flags", f});
  if (!log.cache_view().empty()) a.push_back({"webtier.cache", std::string(log.cache_view())});
  for (size_t i = 0; i < log.noted_count; ++i) {
    const ExchangeLog::AttemptNote& n = log.noted[i];
    span.events.push_back({n.start,
                           "attempt",
                           {{"webtier.member", n.member->serverset().id},
                            {"server.address", n.member->address()},
                            {"webtier.outcome", n.failure == 0 ? std::string("answered") : AccessFlagsText(n.failure)}}});
  }
  span.error = status == 0 || status >= 500;
  worker.spans->Export(std::move(span));
}

void DescribeExchange(const Exchange& exchange, AccessRecord& r) {
  const ExchangeLog& log = exchange.log();
  r.flags |= log.flags;
  r.attempts = log.attempts;
  r.connect_ms = log.connect_ms;
  r.upstream_ms = log.upstream_ms;
  r.cache = log.cache_view();
  if (log.member != nullptr) {
    r.member = log.member->serverset().id;
    r.member_addr = log.member->address();
  }
  if (exchange.prepared()) {
    r.request_id = exchange.request_id();
    r.trace_id = exchange.trace().trace_view();
  }
}

void CountClientAnswer(WorkerContext& worker, int status, uint64_t bytes_in, uint64_t bytes_out, double ms, bool tls,
                       Protocol protocol, const Exchange* exchange) {
  ProxyMetrics& metrics = worker.metrics;
  const std::string_view cache = exchange != nullptr ? exchange->log().cache_view() : std::string_view();
  metrics.client_answers.Record(status, bytes_in, bytes_out, ms, cache);
  metrics.answers_by_transport[tls ? 1 : 0].fetch_add(1, std::memory_order_relaxed);
  metrics.answers_by_protocol[protocol == Protocol::kHttp2 ? 1 : 0].fetch_add(1, std::memory_order_relaxed);
  if (exchange == nullptr) return;
  const ExchangeLog& log = exchange->log();
  // The member's own answers only: a head arrived from it.
  if (log.member != nullptr && log.upstream_ms >= 0)
    log.member->answers.Record(status, bytes_in, bytes_out, log.upstream_ms, cache);
}

}  // namespace webtier::balancer
