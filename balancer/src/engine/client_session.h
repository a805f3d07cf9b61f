// One client connection, from accept to close (plain or TLS): reads its requests one after
// another, refuses the unreadable and unforwardable ones (400/405/408/413/431/501,
// see request_errors.h), hands each readable one to an Exchange and writes the
// error when no member answered. Registered with its worker (for the
// watchdog and drains) while it runs; used only from the worker's thread.
#pragma once

#include <optional>
#include <string>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include "engine/connection.h"
#include "webtier/balancer/http/http_rules.h"
#include "webtier/balancer/http/request_errors.h"
#include "engine/worker_context.h"

namespace webtier::balancer {

class Exchange;

// Why a request cannot be forwarded (framing, Host, admin path); nullopt
// when it can. Rewrites an absolute-form target to origin form. For HTTP/1.x
// and HTTP/2 requests alike; `tls`: it came over TLS.
std::optional<RequestError> RefuseRequest(boost::beast::http::request<boost::beast::http::string_body>& head,
                                          const WorkerContext& worker, bool tls);
// The balancer's own error answer's JSON body.
std::string ErrorBody(int status, std::string_view error);
// The access log's flag for a refused request.
uint32_t RejectionFlag(Rejection reason);

class ClientSession {
 public:
  // Counts the connection as open (it was counted by the acceptor) until
  // destroyed. `worker` must outlive the session. `peer` is the client's
  // address, as the accept gave it. With `tls`, the connection is TLS: Run()
  // starts with the handshake (tls_session.h).
  ClientSession(WorkerContext& worker, tcp::socket socket, const tcp::endpoint& peer,
                std::shared_ptr<ssl::context> tls = nullptr);
  ~ClientSession();
  ClientSession(const ClientSession&) = delete;
  ClientSession& operator=(const ClientSession&) = delete;

  // Serves requests until the client leaves, an error ends the connection,
  // keep-alive ends or the server drains; then closes the connection.
  awaitable<void> Run();

 private:
  using RequestParser = boost::beast::http::request_parser<boost::beast::http::string_body>;

  // How the connection goes on after a step.
  enum class Next {
    kRequest,  // to the next step, or the next request
    kClose,    // closes: the client left, failed or timed out, or the server drains
    kGoodbye,  // closes cleanly between requests (with a TLS close_notify)
    kLinger,   // an error was answered: closes after LingeringClose()
  };

  // The steps of one request, in the order Run() takes them.
  //
  // Waits (idle or header timeout) until the next request's first bytes are
  // in `buffer`.
  awaitable<Next> AwaitRequest(boost::beast::flat_buffer& buffer, bool first);
  // Reads the head and refuses what cannot be forwarded (Refusal).
  awaitable<Next> ReadHead(boost::beast::flat_buffer& buffer, RequestParser& parser);
  // Sends 100 Continue when it is expected, then reads the body, all of it
  // when it is small (kBufferedBodyBytes), else its first part.
  awaitable<Next> ReadBody(boost::beast::flat_buffer& buffer, RequestParser& parser);
  // Runs the Exchange, answers when no member did, counts and logs the
  // request; becomes a tunnel after a 101.
  // (An HTTP/2 connection is handed to an H2Session instead, see Run().)
  awaitable<Next> Forward(boost::beast::flat_buffer& buffer, RequestParser& parser);

  // Hands the connection to an H2Session (ALPN h2, or the h2c preface in
  // `buffer`) until it ends.
  awaitable<Next> ServeHttp2(boost::beast::flat_buffer& buffer);
  // Answers a request that could not be read; false when the client went
  // away and nobody is left to answer.
  awaitable<bool> RejectUnreadable(error_code ec, RequestPart part);
  awaitable<void> Reject(int status, Rejection reason, std::string_view why);
  awaitable<void> WriteError(unsigned version, int status, std::string_view error, bool keep);
  // The access log's line for the current request (see Request below):
  // `status` as the client got it (0: nothing), `flags` (AccessFlag),
  // `exchange` when one ran.
  void LogAccess(int status, uint32_t flags, const Exchange* exchange);
  // The status page's counts of the current request's answer (0: none):
  // the balancer's totals and, for a member's own answer, the member's.
  void CountAnswer(int status, const Exchange* exchange);
  // The current request's span, for --otlp-endpoint: the balancer's span of
  // the trace it sent on, with each attempt as an event. A request refused
  // before any member (`exchange` null or never prepared) gets a span of its
  // own in the client's trace; an unreadable one (no head) none.
  void ExportSpan(int status, uint32_t flags, const Exchange* exchange);
  // Bytes of the current request read from the client so far.
  uint64_t RequestBytesIn() const;
  // Closes after an error response: half-close and read what the client
  // still sends for a moment, so it gets the response instead of a reset.
  awaitable<void> LingeringClose();

  WorkerContext& worker_;
  // Copied from worker_: the destructor may run while the worker's
  // io_context is destroyed, after the WorkerContext; these outlive both.
  std::list<ClientConnection*>& clients_;
  ServerCounters& counters_;
  ProxyMetrics& metrics_;
  ClientStream stream_;
  ClientConnection conn_;
  std::list<ClientConnection*>::iterator registered_;
  std::string client_ip_ = "unknown";
  HeaderFields header_fields_;  // the current request's header fields (not its trailer)
  // The current request, for the access log and the status page's counts
  // (`time` only while the access log is on).
  struct Request {
    std::chrono::system_clock::time_point time;
    Clock::time_point start;
    Clock::time_point body_deadline;  // the whole body by then (--body-timeout-ms after its head)
    uint64_t read_mark = 0;  // ClientStream::bytes_read before its first byte
    uint64_t written_mark = 0;
    const boost::beast::flat_buffer* buffer = nullptr;  // what was read and not yet parsed
    const boost::beast::http::request<boost::beast::http::string_body>* head = nullptr;  // once parsed
  } request_;
};

}  // namespace webtier::balancer
