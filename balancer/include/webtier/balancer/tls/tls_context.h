// The server-side TLS settings of --tls-listen: an OpenSSL context built from
// the PEM certificate chain and key, with TLS 1.2 and 1.3 only, the Mozilla
// "intermediate" cipher list, ALPN http/1.1, no renegotiation, and session
// resumption (a server-side session cache and session tickets).
//
// Reload() (on SIGHUP) builds a whole new context from the same files and
// swaps it in: connections already open keep the context they started with
// (OpenSSL counts the references), new handshakes get the new one. A file
// that does not load leaves the current context in place.
//
// Session tickets are sealed with the balancer's own keys (TicketKeys): a new
// key every kTicketKeyRotation and at every reload, the previous one still
// accepted (its tickets are renewed under the current key), older ones not.
// So a ticket resumes across one rotation or reload, and a stolen key opens
// at most two periods of recorded sessions (forward secrecy is bounded).
//
// Thread-safe: Current() may be called from any worker while Reload() runs.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/ssl/context.hpp>

#include "webtier/common/mutex.h"
#include "webtier/common/status.h"

namespace webtier::balancer {

// How often the session-ticket key changes without a reload.
inline constexpr std::chrono::seconds kTicketKeyRotation{3600};

class TicketKeys;

class TlsContext {
 public:
  // Remembers the files; nothing is loaded until Load(). With `h2`, ALPN
  // offers h2 before http/1.1 (the client's pick among them).
  TlsContext(std::string cert_file, std::string key_file, bool h2 = false);

  // Builds the first context. kInvalidArgument "--tls-cert: ..." or
  // "--tls-key: ..." (one line) when a file is missing or not valid PEM, or
  // the key does not belong to the certificate.
  Status Load();
  // Builds a new context from the same files and swaps it in; on failure the
  // current one stays and the error says why.
  Status Reload();

  // The context new handshakes use (null before a successful Load()).
  std::shared_ptr<boost::asio::ssl::context> Current() const;

  // Rotations so far (reloads and periodic), for tests and the log.
  uint64_t ticket_key_rotations() const;

  // The session-ticket keys (secret: they open every ticket they sealed), for
  // a successor process (control/handover.h), and taking them over there:
  // tickets the old process issued resume in the new one.
  std::string ExportTicketKeys() const;
  Status ImportTicketKeys(std::string_view keys);

  ~TlsContext();

 private:
  std::shared_ptr<TicketKeys> tickets_;
  const std::string cert_file_, key_file_;
  const bool h2_;
  mutable Mutex mu_;
  std::shared_ptr<boost::asio::ssl::context> current_ WEBTIER_GUARDED_BY(mu_);
};

}  // namespace webtier::balancer
