// Building and reloading the TLS server context (see tls_context.h).
#include "webtier/balancer/tls_context.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "webtier/common/flags.h"

namespace webtier::balancer {

namespace ssl = boost::asio::ssl;

namespace {

// Mozilla "intermediate" (server side, TLS 1.2 part); TLS 1.3 suites are
// OpenSSL's defaults, which are the same three.
constexpr const char* kCiphers12 =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305";
constexpr const char* kCiphers13 = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
constexpr const char* kGroups = "X25519:prime256v1:secp384r1";
constexpr unsigned char kSessionIdContext[] = "webtier-balancer";
constexpr long kSessionCacheSize = 20480;
constexpr long kSessionTimeoutSeconds = 3600;
constexpr size_t kTicketKeyBytes = 80;  // name 16, HMAC 32, AES 32 (SSL_CTX_set_tlsext_ticket_keys)

// ALPN: http/1.1 is the one protocol spoken. A client that offers ALPN but
// not http/1.1 is refused with no_application_protocol (RFC 7301, 3.2).
int SelectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
               void*) {
  static constexpr unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kHttp11, sizeof kHttp11, in, inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

// The first queued OpenSSL error as text (the queue is cleared), else `ec`.
std::string OpenSslError(const boost::system::error_code& ec) {
  const unsigned long e = ERR_peek_error();  // the first: the root cause
  ERR_clear_error();
  if (e == 0) return ec.message();
  const char* reason = ERR_reason_error_string(e);
  return reason != nullptr ? reason : ec.message();
}

// A file that cannot be opened, told plainly (OpenSSL would say "system lib").
Status Readable(std::string_view flag, const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return flags::Invalid(flag, "cannot read " + path + ": " + std::strerror(errno));
  std::fclose(f);
  return Status::Ok();
}

Status Build(const std::string& cert, const std::string& key, std::shared_ptr<ssl::context>* out) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* n = ctx->native_handle();
  SSL_CTX_set_min_proto_version(n, TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(n, TLS1_3_VERSION);
  // No renegotiation at all (OpenSSL 3 also refuses client-initiated ones unless
  // SSL_OP_ALLOW_CLIENT_RENEGOTIATION is set). The server's cipher order wins
  // (as in HAProxy and nginx): AES-128-GCM before AES-256-GCM, whose SHA-384
  // key schedule costs every handshake more for no practical gain; a client
  // that lists ChaCha20 first (no AES instructions) still gets ChaCha20.
  SSL_CTX_set_options(n, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                             SSL_OP_PRIORITIZE_CHACHA);
  SSL_CTX_set_cipher_list(n, kCiphers12);
  SSL_CTX_set_ciphersuites(n, kCiphers13);
  SSL_CTX_set1_groups_list(n, kGroups);
  SSL_CTX_set_dh_auto(n, 1);
  SSL_CTX_set_alpn_select_cb(n, SelectAlpn, nullptr);
  SSL_CTX_set_session_id_context(n, kSessionIdContext, sizeof kSessionIdContext - 1);
  SSL_CTX_set_session_cache_mode(n, SSL_SESS_CACHE_SERVER);
  SSL_CTX_sess_set_cache_size(n, kSessionCacheSize);
  SSL_CTX_set_timeout(n, kSessionTimeoutSeconds);
  SSL_CTX_set_num_tickets(n, 1);  // TLS 1.3: one ticket per full handshake (OpenSSL's default is 2)
  if (Status s = Readable("--tls-cert", cert); !s.ok()) return s;
  if (Status s = Readable("--tls-key", key); !s.ok()) return s;
  boost::system::error_code ec;
  ctx->use_certificate_chain_file(cert, ec);
  if (ec) return flags::Invalid("--tls-cert", "no PEM certificate chain in " + cert + " (" + OpenSslError(ec) + ")");
  ctx->use_private_key_file(key, ssl::context::pem, ec);
  if (ec) return flags::Invalid("--tls-key", "no usable PEM private key in " + key + " (" + OpenSslError(ec) + ")");
  if (SSL_CTX_check_private_key(n) != 1)
    return flags::Invalid("--tls-key", key + " does not match the certificate in " + cert);
  *out = std::move(ctx);
  return Status::Ok();
}

}  // namespace

TlsContext::TlsContext(std::string cert_file, std::string key_file)
    : cert_file_(std::move(cert_file)), key_file_(std::move(key_file)) {}

Status TlsContext::Load() { return Reload(); }

Status TlsContext::Reload() {
  std::shared_ptr<ssl::context> next;
  if (Status s = Build(cert_file_, key_file_, &next); !s.ok()) return s;
  std::lock_guard lock(mu_);
  if (current_) {
    // Tickets issued under the old context stay valid under the new one.
    std::array<unsigned char, kTicketKeyBytes> keys{};
    if (SSL_CTX_get_tlsext_ticket_keys(current_->native_handle(), keys.data(), keys.size()) == 1)
      SSL_CTX_set_tlsext_ticket_keys(next->native_handle(), keys.data(), keys.size());
    OPENSSL_cleanse(keys.data(), keys.size());
  }
  current_ = std::move(next);
  return Status::Ok();
}

std::shared_ptr<ssl::context> TlsContext::Current() const {
  std::lock_guard lock(mu_);
  return current_;
}

}  // namespace webtier::balancer
