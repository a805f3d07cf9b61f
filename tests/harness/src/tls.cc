// Test certificates and the blocking TLS client (see tls.h).
#include "webtier/testing/tls.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <random>
#include <stdexcept>

#include "webtier/testing/harness.h"

namespace webtier::testing {

namespace {

void Check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("test certificate: ") + what);
}

void WritePem(const std::string& path, const std::function<int(FILE*)>& write) {
  FILE* f = std::fopen(path.c_str(), "w");
  Check(f != nullptr, "cannot write file");
  const int ok = write(f);
  std::fclose(f);
  Check(ok == 1, "PEM write failed");
}

}  // namespace

TlsFiles WriteSelfSignedCert(const std::string& dir, const std::string& stem, const std::string& common_name) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  Check(key != nullptr, "key generation");
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), static_cast<long>(std::random_device{}() & 0x7fffffff));
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(common_name.c_str()), -1,
                             -1, 0);
  X509_set_issuer_name(x, name);
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, x, x, nullptr, nullptr, 0);
  const std::string san = "DNS:" + common_name + ",IP:127.0.0.1";
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, san.c_str());
  Check(ext != nullptr, "subjectAltName");
  X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  Check(X509_sign(x, key, EVP_sha256()) > 0, "signing");
  TlsFiles files{dir + "/" + stem + ".crt", dir + "/" + stem + ".key"};
  WritePem(files.cert, [&](FILE* f) { return PEM_write_X509(f, x); });
  WritePem(files.key,
           [&](FILE* f) { return PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr); });
  X509_free(x);
  EVP_PKEY_free(key);
  return files;
}

TlsClient::TlsClient(uint16_t port, TlsClientOptions options) : options_(std::move(options)) {
  ::signal(SIGPIPE, SIG_IGN);  // SSL_write on a socket the server closed: an error, not the end of the test
  fd_ = ConnectLoopback(port, options_.timeout);
  timeval tv{static_cast<time_t>(options_.timeout.count() / 1000),
             static_cast<suseconds_t>(options_.timeout.count() % 1000 * 1000)};
  if (fd_ >= 0) ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  ctx_ = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx_, options_.min_version);
  SSL_CTX_set_max_proto_version(ctx_, options_.max_version);
  if (options_.legacy) {
    SSL_CTX_set_security_level(ctx_, 0);
    SSL_CTX_set_cipher_list(ctx_, "ALL:@SECLEVEL=0");
  }
  SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);  // self-signed: the tests check the CN themselves
  // No client cache: freeing the context would mark its sessions not resumable.
  SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_OFF);
  ssl_ = SSL_new(ctx_);
  if (!options_.alpn.empty()) {
    std::string wire;
    for (const auto& p : options_.alpn) {
      wire.push_back(static_cast<char>(p.size()));
      wire += p;
    }
    SSL_set_alpn_protos(ssl_, reinterpret_cast<const unsigned char*>(wire.data()), static_cast<unsigned>(wire.size()));
  }
  if (options_.resume) SSL_set_session(ssl_, options_.resume.get());
  SSL_set_tlsext_host_name(ssl_, "localhost");
  if (fd_ >= 0) SSL_set_fd(ssl_, fd_);
}

TlsClient::~TlsClient() {
  // A close_notify: without it OpenSSL takes the session for a bad one and
  // it could not be resumed.
  if (SSL_is_init_finished(ssl_)) SSL_shutdown(ssl_);
  SSL_free(ssl_);
  SSL_CTX_free(ctx_);
  if (fd_ >= 0) ::close(fd_);
}

std::string TlsClient::ErrorText(int ret) {
  const int err = SSL_get_error(ssl_, ret);
  std::string text = "SSL_get_error=" + std::to_string(err);
  while (const unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    text += std::string(" ") + buf;
  }
  return text;
}

bool TlsClient::Handshake() {
  if (fd_ < 0) {
    error_ = "connect refused";
    return false;
  }
  const int ret = SSL_connect(ssl_);
  if (ret == 1) return true;
  error_ = ErrorText(ret);
  return false;
}

std::string TlsClient::version() const { return SSL_get_version(ssl_); }

std::string TlsClient::alpn() const {
  const unsigned char* p = nullptr;
  unsigned len = 0;
  SSL_get0_alpn_selected(ssl_, &p, &len);
  return std::string(reinterpret_cast<const char*>(p), len);
}

bool TlsClient::reused() const { return SSL_session_reused(ssl_) == 1; }

std::string TlsClient::peer_common_name() const {
  X509* cert = SSL_get1_peer_certificate(ssl_);
  if (cert == nullptr) return "";
  char cn[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
  X509_free(cert);
  return cn;
}

TlsSession TlsClient::session() const { return TlsSession(SSL_get1_session(ssl_), SSL_SESSION_free); }

bool TlsClient::Write(std::string_view data) {
  while (!data.empty()) {
    const int n = SSL_write(ssl_, data.data(), static_cast<int>(data.size()));
    if (n <= 0) {
      error_ = ErrorText(n);
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

std::string TlsClient::ReadResponse() {
  for (;;) {
    if (const auto end = pending_.find("\r\n\r\n"); end != std::string::npos) {
      size_t length = 0;
      const std::string head = pending_.substr(0, end);
      for (const char* name : {"\r\nContent-Length: ", "\r\ncontent-length: "}) {
        if (const auto at = head.find(name); at != std::string::npos) length = std::stoul(head.substr(at + 18));
      }
      if (pending_.size() >= end + 4 + length) {
        std::string out = pending_.substr(0, end + 4 + length);
        pending_.erase(0, out.size());
        return out;
      }
    }
    char buf[16384];
    const int n = SSL_read(ssl_, buf, sizeof buf);
    if (n <= 0) {
      error_ = ErrorText(n);
      return "";
    }
    pending_.append(buf, static_cast<size_t>(n));
  }
}

std::string TlsClient::Get(const std::string& path, const std::vector<std::string>& headers) {
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: localhost\r\n";
  for (const auto& h : headers) req += h + "\r\n";
  req += "\r\n";
  if (!Write(req)) return "";
  return ReadResponse();
}

bool TlsClient::Renegotiate() {
  if (SSL_renegotiate(ssl_) != 1) {
    error_ = ErrorText(0);
    return false;
  }
  const int ret = SSL_do_handshake(ssl_);
  if (ret != 1) {
    error_ = ErrorText(ret);
    return false;
  }
  // The server's answer comes with the next read: send a request through it.
  if (Get("/").empty()) return false;
  return SSL_renegotiate_pending(ssl_) == 0;
}

}  // namespace webtier::testing
