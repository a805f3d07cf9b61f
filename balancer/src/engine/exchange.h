// One request forwarded to the members: pick a member, send the request,
// retry as the RetryPolicy decides, relay the response. The exchange writes
// to the client only a member's response; when no member answers it says so
// in its outcome and the session writes the error. Lives on its session's
// coroutine frame for one request; used only from the worker's thread.
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include "edge/edge_http.h"
#include "engine/connection.h"
#include "engine/relay.h"
#include "webtier/balancer/http/http_rules.h"
#include "webtier/balancer/engine/retry_policy.h"
#include "engine/worker_context.h"

namespace webtier::balancer {

// How an exchange ended.
struct ExchangeOutcome {
  int status = 0;           // what the client got or is to get; 0: nothing (the client failed mid-body)
  std::string_view error;   // set when no member answered: the session answers `status` with it
  bool responded = false;   // a member's response went to the client (whole or cut short)
  bool keep_alive = false;  // the client's connection may serve another request
  // Set when the member switched protocols (101) for an Upgrade request and
  // the client has the 101 head: the session tunnels (tunnel.h) and ends.
  std::unique_ptr<UpstreamConnection> tunnel;
};

// What the access log tells of an exchange.
struct ExchangeLog {
  Member* member = nullptr;  // the last member tried; valid while its Exchange lives
  int attempts = 0;              // members tried
  uint32_t flags = 0;            // AccessFlag bits (access_log.h)
  // The answering attempt's timings: connect_ms only while the access log
  // is on; upstream_ms and cache always (the status page's too).
  double connect_ms = -1;        // -1: a pooled connection
  double upstream_ms = -1;       // request sent -> response head; -1: no head
  char cache[32];                // the answer's X-Cache (cut to 32 bytes)
  // The first attempts, for the request's span (only while spans are exported).
  struct AttemptNote {
    const Member* member;
    std::chrono::system_clock::time_point start;
    uint32_t failure;  // AccessFlag bits of how it failed; 0: it answered
  };
  static constexpr size_t kNotedAttempts = 8;
  AttemptNote noted[kNotedAttempts];
  size_t noted_count = 0;
  size_t cache_length = 0;
  std::string_view cache_view() const { return {cache, cache_length}; }
};

class Exchange {
 public:
  // `request` must stay valid (and `streamed`, when the body is still
  // arriving, see StreamedBody) until Run() completes. `keep_alive`: the
  // client's connection may stay open as far as the session knows.
  Exchange(WorkerContext& worker, ClientConnection& client, http::request<http::string_body>& request,
           const std::string& client_ip, StreamedBody* streamed, bool keep_alive);

  // Forwards the request (retries as --retries allows) and relays the answer.
  // A client failure while its body streams is left in streamed->client_error.
  // A client that goes away meanwhile (ClientConnection::client_gone) ends
  // it at once: the member's connection closes, no retry, nothing to answer.
  // A member connection goes back to the pool only after a cleanly framed
  // answer read whole with nothing left over; never after an Upgrade request.
  awaitable<ExchangeOutcome> Run();

  // After Run(): for the access log. request_id() and trace() are empty
  // when no member was tried.
  const ExchangeLog& log() const { return log_; }
  std::string_view request_id() const { return request_id_; }
  const RequestTrace& trace() const { return trace_; }
  bool prepared() const { return !request_id_.empty(); }

 private:
  static constexpr size_t kMaxTried = 16;  // members one request may try

  // What follows one step of an attempt.
  enum class Step {
    kOn,            // the attempt goes on to its next step
    kNextMember,    // this member failed or answered a retriable error: try another
    kGiveUp,        // no more attempts: the session answers status_/error_
    kClientFailed,  // the client failed while its body streamed: the session answers
  };

  // An attempt's steps, in the order Run() takes them; each step that ends
  // the attempt has counted and logged why.
  //
  // The next member to try (recorded in tried_, the access log and the
  // metrics); null when none is left.
  Member* NextMember(Attempt& attempt);
  // A connection to `member` (pooled when that is safe, else new) in `up`,
  // the request written to it, a streamed body after it.
  awaitable<Step> Send(Member& member, const Attempt& attempt, std::unique_ptr<UpstreamConnection>& up);
  // The final answer's head in answer_; interim (1xx) answers on the way
  // are relayed to the client.
  awaitable<Step> ReadAnswerHead(Member& member, const Attempt& attempt, UpstreamConnection& up);
  // Whether the answer in answer_ goes to the client: refused for its
  // framing (kGiveUp), retried elsewhere (kNextMember) or relayed (kOn,
  // with `framing` the codings to relay).
  Step CheckAnswer(Member& member, const Attempt& attempt, ResponseFraming& framing);
  // Relays the answer (or switches protocols) and pools `up` again when the
  // answer was read whole and cleanly framed.
  awaitable<ExchangeOutcome> Deliver(std::unique_ptr<UpstreamConnection>& up, const ResponseFraming& framing);
  // The outcome when no attempt answered: nothing for a client that left,
  // else status_/error_.
  ExchangeOutcome GiveUp();

  // The edge cache (worker_.edge): the object to answer with, if it has one
  // the client accepts; else null, with what the answer may do to it noted.
  std::shared_ptr<const edge::EdgeObject> LookUpEdge();
  // Answers from memory: no member is asked.
  awaitable<ExchangeOutcome> AnswerFromEdge(const edge::EdgeObject& object);
  // Before a member's answer is relayed: erases what a successful unsafe
  // request invalidates, and readies the object to keep (capturing its body).
  EdgeTap EdgeBeforeRelay();
  // After it: keeps the object when the answer went through whole.
  void EdgeAfterRelay(bool whole);

  // Serializes the head for the members and lays out the bytes of the first
  // write: the head, then the body (a streamed one: what has arrived so far).
  void PrepareRequest();
  // A new connection to `member`; null with `error` set when it failed.
  awaitable<std::unique_ptr<UpstreamConnection>> Connect(Member& member, error_code& error);
  // Sends the rest of a streamed body to `up` as it arrives from the client.
  // A client failure (too large, too slow, malformed, gone) is left in
  // `streamed_->client_error`; the result is the member's write error.
  awaitable<error_code> StreamBody(UpstreamConnection& up);
  // Counts, ejects and logs `failure` of this attempt as the retry policy
  // decides and keeps the status to report; kNextMember when another member
  // is tried, else kGiveUp.
  Step AfterFailure(Failure failure, Member& member, const Attempt& attempt, error_code ec);
  // A member's answer `code` (its head read, nothing relayed yet): counts a
  // 5xx towards the member's outlier ejection, ends its run otherwise; true
  // when the request goes to another member instead (RetriesStatus).
  bool RetryAfterAnswer(int code, Member& member, const Attempt& attempt);
  // A 5xx answer, or one refused for its framing: counted towards the
  // member's outlier ejection (--outlier-consecutive-5xx), which it may trigger.
  void CountFailedAnswer(Member& member, std::string_view why);
  // Ejects `member` within this generation's cap (MemberSet::TryEject), counting
  // and logging a new ejection; `duration` nullopt: the connect back-off.
  void Eject(Member& member, std::string_view reason, std::string_view why,
             std::optional<std::chrono::milliseconds> duration);
  // balancer_locality_requests_total for a request's first member.
  void CountLocality(const Member& member);
  // Writes a member's interim (1xx) answer to the client.
  awaitable<error_code> RelayInterim(const http::response_header<>& head);
  // A member's answer whose framing cannot be relayed faithfully: counted
  // against the member (as a 5xx for outlier ejection), logged, 502 to the client.
  void RefuseResponse(Member& member, std::string_view why);
  // Sends the member's 101 to the client and hands the connection over for
  // the tunnel.
  awaitable<ExchangeOutcome> SwitchProtocols(std::unique_ptr<UpstreamConnection> up,
                                             const http::response_header<>& head);

  WorkerContext& worker_;
  ClientConnection& conn_;
  http::request<http::string_body>& req_;
  const std::string& client_ip_;
  StreamedBody* const streamed_;
  bool keep_alive_;
  const bool header_keep_alive_;  // what the request's header asked for (a trailer cannot change it)
  std::string_view request_id_;
  char request_id_storage_[kRequestIdLength];
  char chunk_header_[20];
  std::array<asio::const_buffer, 4> request_parts_;
  size_t request_part_count_ = 0;
  bool upgrade_ = false;  // an Upgrade request: sent once, its connection never pooled
  std::string_view pick_key_;  // the request's path, for consistent_hash
  Member* tried_[kMaxTried];
  size_t tried_count_ = 0;
  Clock::time_point sent_;  // when the current attempt's request went out
  // The current attempt's answer (its head, then the body as relayed).
  std::optional<http::response_parser<http::buffer_body>> answer_;
  std::shared_ptr<const MemberSet> hold_;  // the generation Run() uses, kept for log_.member
  const MemberSet* members_ = nullptr;
  const bool logging_;  // the access log is on: time the attempts
  // The edge cache's view of the request and what its lookup found.
  edge::EdgeRequest edge_request_;
  edge::Lookup edge_lookup_;
  std::shared_ptr<edge::EdgeObject> edge_object_;  // the answer being kept
  int64_t edge_request_ms_ = 0;                    // when the request left for the tier (Unix ms)
  ExchangeLog log_;
  RequestTrace trace_;
  int status_ = 502;
  std::string_view error_ = "no member answered";
};

// The access log's fields of a request's head (method, path, authority,
// user agent) and of the exchange that forwarded it.
void DescribeRequest(const http::request_header<>& head, AccessRecord& r);
void DescribeExchange(const Exchange& exchange, AccessRecord& r);

// The request's span, for --otlp-endpoint (worker.spans set): the balancer's
// span of the trace it sent the request on, with each attempt as an event.
// A request refused before any member (`exchange` null or never prepared)
// gets a span of its own in the client's trace; one without a head (`head`
// null: unreadable) none. `protocol_version`: "1.0", "1.1" or "2".
void ExportRequestSpan(WorkerContext& worker, const http::request_header<>* head, std::string_view protocol_version,
                       Clock::time_point start, const std::string& client_ip, int status, uint32_t flags,
                       const Exchange* exchange);

// Counts an answer the client got (`status` non-zero) for the status page:
// the balancer's totals and, for a member's own answer, the member's.
void CountClientAnswer(WorkerContext& worker, int status, uint64_t bytes_in, uint64_t bytes_out, double ms, bool tls,
                       Protocol protocol, const Exchange* exchange);

}  // namespace webtier::balancer
