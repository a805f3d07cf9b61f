// Building and reloading the TLS server context (see tls_context.h).
#include "webtier/balancer/tls/tls_context.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "webtier/common/flags.h"
#include "webtier/common/mutex.h"

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

}  // namespace

// The session-ticket keys: the current one seals new tickets; it and the
// previous one open them. Shared by every context of one TlsContext (a
// reload rotates, it does not start over), and by every worker thread.
class TicketKeys {
 public:
  struct Key {
    unsigned char name[16];
    unsigned char aes[32];   // AES-256-CBC
    unsigned char hmac[32];  // HMAC-SHA256
  };

  TicketKeys() { Rotate(); }
  ~TicketKeys() {
    OPENSSL_cleanse(&current_, sizeof current_);
    OPENSSL_cleanse(&previous_, sizeof previous_);
  }

  void Rotate() {
    MutexLock lock(&mu_);
    RotateLocked();
  }
  uint64_t rotations() const {
    MutexLock lock(&mu_);
    return rotations_;
  }

  // The keys as bytes for a successor process: a version byte, whether the
  // previous key is valid, the current and previous keys, and the current
  // key's age in seconds (so the rotation keeps its schedule).
  static constexpr size_t kExportSize = 2 + 2 * sizeof(Key) + 8;
  std::string Export() const {
    MutexLock lock(&mu_);
    std::string out(kExportSize, '\0');
    out[0] = 1;
    out[1] = has_previous_ ? 1 : 0;
    std::memcpy(out.data() + 2, &current_, sizeof current_);
    std::memcpy(out.data() + 2 + sizeof(Key), &previous_, sizeof previous_);
    const uint64_t age = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - rotated_at_).count());
    std::memcpy(out.data() + 2 + 2 * sizeof(Key), &age, sizeof age);
    return out;
  }
  bool Import(std::string_view in) {
    if (in.size() != kExportSize || in[0] != 1 || (in[1] != 0 && in[1] != 1)) return false;
    uint64_t age = 0;
    std::memcpy(&age, in.data() + 2 + 2 * sizeof(Key), sizeof age);
    if (age > static_cast<uint64_t>(kTicketKeyRotation.count())) age = static_cast<uint64_t>(kTicketKeyRotation.count());
    MutexLock lock(&mu_);
    has_previous_ = in[1] == 1;
    std::memcpy(&current_, in.data() + 2, sizeof current_);
    std::memcpy(&previous_, in.data() + 2 + sizeof(Key), sizeof previous_);
    rotated_at_ = std::chrono::steady_clock::now() - std::chrono::seconds(age);
    ++rotations_;
    return true;
  }

  // SSL_CTX_set_tlsext_ticket_key_evp_cb's contract: 1 = sealed, 2 = opened
  // and to be renewed, 0 = not ours (a full handshake follows), -1 = error.
  // An opened ticket is always renewed, as OpenSSL's own keys do: a resumed
  // client gets a fresh ticket (under the current key) right after its
  // handshake. Answering 1 ("opened, keep it") sent none, and a client with
  // Nagle on then held its first request for the server's delayed ACK (40 ms
  // on Linux) on every resumed connection.
  int Seal(unsigned char name[16], unsigned char* iv, EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac, int encrypt) {
    MutexLock lock(&mu_);
    if (std::chrono::steady_clock::now() - rotated_at_ >= kTicketKeyRotation) RotateLocked();
    const Key* key = nullptr;
    if (encrypt != 0) {
      key = &current_;
      std::memcpy(name, key->name, sizeof key->name);
      if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1) return -1;
      if (EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key->aes, iv) != 1) return -1;
    } else {
      if (std::memcmp(name, current_.name, sizeof current_.name) == 0) {
        key = &current_;
      } else if (has_previous_ && std::memcmp(name, previous_.name, sizeof previous_.name) == 0) {
        key = &previous_;
      } else {
        return 0;
      }
      if (EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key->aes, iv) != 1) return -1;
    }
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, const_cast<unsigned char*>(key->hmac), sizeof key->hmac),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0), OSSL_PARAM_construct_end()};
    if (EVP_MAC_CTX_set_params(mac, params) != 1) return -1;
    return encrypt != 0 ? 1 : 2;
  }

 private:
  void RotateLocked() WEBTIER_REQUIRES(mu_) {
    previous_ = current_;
    has_previous_ = rotations_ > 0;
    if (RAND_bytes(reinterpret_cast<unsigned char*>(&current_), sizeof current_) != 1) {
      // No randomness: keep no ticket key at all rather than a guessable one.
      has_previous_ = false;
      std::memset(&current_, 0, sizeof current_);
      RAND_bytes(current_.name, sizeof current_.name);
    }
    rotated_at_ = std::chrono::steady_clock::now();
    ++rotations_;
  }

  mutable Mutex mu_;
  Key current_ WEBTIER_GUARDED_BY(mu_){};
  Key previous_ WEBTIER_GUARDED_BY(mu_){};
  bool has_previous_ WEBTIER_GUARDED_BY(mu_) = false;
  uint64_t rotations_ WEBTIER_GUARDED_BY(mu_) = 0;
  std::chrono::steady_clock::time_point rotated_at_ WEBTIER_GUARDED_BY(mu_);
};

namespace {

// Where each context finds its TicketKeys (SSL_CTX ex_data; Asio keeps its
// own data in the app-data slot).
// Each context holds a reference to its keys, dropped when OpenSSL frees the
// context (after the last connection that used it), so the keys outlive
// every handshake whatever the order of shutdown.
void FreeTicketKeys(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<std::shared_ptr<TicketKeys>*>(ptr);
}

int TicketKeysIndex() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, FreeTicketKeys);
  return index;
}

int TicketKeyCallback(SSL* ssl, unsigned char name[16], unsigned char* iv, EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac,
                      int encrypt) {
  auto* keys = static_cast<std::shared_ptr<TicketKeys>*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), TicketKeysIndex()));
  if (keys == nullptr || !*keys) return 0;
  return (*keys)->Seal(name, iv, cipher, mac, encrypt);
}

// ALPN: h2 (when offered, `arg` non-null) and http/1.1, the server's order
// first. A client that offers ALPN but neither is refused with
// no_application_protocol (RFC 7301, 3.2).
int SelectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
               void* arg) {
  static constexpr unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  static constexpr unsigned char kBoth[] = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  const unsigned char* ours = arg != nullptr ? kBoth : kHttp11;
  const unsigned int ours_length = arg != nullptr ? sizeof kBoth : sizeof kHttp11;
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, ours, ours_length, in, inlen) != OPENSSL_NPN_NEGOTIATED)
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

Status Build(const std::string& cert, const std::string& key, bool h2, const std::shared_ptr<TicketKeys>& tickets,
             std::shared_ptr<ssl::context>* out) {
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
  static int h2_marker;
  SSL_CTX_set_alpn_select_cb(n, SelectAlpn, h2 ? &h2_marker : nullptr);
  SSL_CTX_set_session_id_context(n, kSessionIdContext, sizeof kSessionIdContext - 1);
  SSL_CTX_set_session_cache_mode(n, SSL_SESS_CACHE_SERVER);
  SSL_CTX_sess_set_cache_size(n, kSessionCacheSize);
  SSL_CTX_set_timeout(n, kSessionTimeoutSeconds);
  SSL_CTX_set_num_tickets(n, 1);  // TLS 1.3: one ticket per full handshake (OpenSSL's default is 2)
  SSL_CTX_set_ex_data(n, TicketKeysIndex(), new std::shared_ptr<TicketKeys>(tickets));
  SSL_CTX_set_tlsext_ticket_key_evp_cb(n, TicketKeyCallback);
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

TlsContext::TlsContext(std::string cert_file, std::string key_file, bool h2)
    : tickets_(std::make_shared<TicketKeys>()),
      cert_file_(std::move(cert_file)),
      key_file_(std::move(key_file)),
      h2_(h2) {}

TlsContext::~TlsContext() = default;

Status TlsContext::Load() {
  std::shared_ptr<ssl::context> next;
  if (Status s = Build(cert_file_, key_file_, h2_, tickets_, &next); !s.ok()) return s;
  MutexLock lock(&mu_);
  current_ = std::move(next);
  return Status::Ok();
}

Status TlsContext::Reload() {
  std::shared_ptr<ssl::context> next;
  if (Status s = Build(cert_file_, key_file_, h2_, tickets_, &next); !s.ok()) return s;
  // A reload is also when an operator expects key material to change:
  // tickets sealed before it still resume once (and are renewed), not after
  // the next rotation.
  tickets_->Rotate();
  MutexLock lock(&mu_);
  current_ = std::move(next);
  return Status::Ok();
}

uint64_t TlsContext::ticket_key_rotations() const { return tickets_->rotations(); }

std::string TlsContext::ExportTicketKeys() const { return tickets_->Export(); }

Status TlsContext::ImportTicketKeys(std::string_view keys) {
  if (!tickets_->Import(keys)) return Status(ErrorCode::kInvalidArgument, "the handed-over ticket keys are malformed");
  return Status::Ok();
}

std::shared_ptr<ssl::context> TlsContext::Current() const {
  MutexLock lock(&mu_);
  return current_;
}

}  // namespace webtier::balancer
