// TLS for the tests: self-signed certificates made at run time (never a
// committed key), and a blocking TLS client on the OpenSSL API that exposes
// what the tests check (version, ALPN, resumption, the server's certificate,
// renegotiation). One TlsClient per thread.
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace webtier::testing {

struct TlsFiles {
  std::string cert;  // PEM certificate
  std::string key;   // PEM private key
};

// Writes a fresh P-256 key and a self-signed certificate for `common_name`
// (also its subjectAltName, with IP 127.0.0.1) to `dir`/`stem`.crt and .key,
// replacing them when they exist. Throws on failure.
TlsFiles WriteSelfSignedCert(const std::string& dir, const std::string& stem, const std::string& common_name);

using TlsSession = std::shared_ptr<SSL_SESSION>;

struct TlsClientOptions {
  int min_version = TLS1_2_VERSION;
  int max_version = TLS1_3_VERSION;
  std::vector<std::string> alpn = {"http/1.1"};  // offered protocols; empty: no ALPN
  bool legacy = false;                           // security level 0: lets the client offer TLS 1.0/1.1
  TlsSession resume;                             // a session to resume
  std::chrono::milliseconds timeout = std::chrono::seconds(5);  // per read and write
};

class TlsClient {
 public:
  // Connects (TCP) to 127.0.0.1:`port`; the handshake waits for Handshake().
  explicit TlsClient(uint16_t port, TlsClientOptions options = {});
  ~TlsClient();
  TlsClient(const TlsClient&) = delete;
  TlsClient& operator=(const TlsClient&) = delete;

  // The client handshake; false with error() set when it failed.
  bool Handshake();
  const std::string& error() const { return error_; }

  std::string version() const;          // "TLSv1.3", ...
  std::string alpn() const;             // the protocol the server selected, "" for none
  bool reused() const;                  // the session was resumed
  std::string peer_common_name() const;  // CN of the server's certificate
  // The session to resume later (after a response was read: TLS 1.3 tickets
  // arrive after the handshake).
  TlsSession session() const;

  bool Write(std::string_view data);
  // One HTTP/1.1 response (head and Content-Length body); "" on EOF/error.
  std::string ReadResponse();
  // A keep-alive GET of `path` with `headers` ("Name: value"); its response.
  std::string Get(const std::string& path, const std::vector<std::string>& headers = {});
  // Asks for a TLS 1.2 renegotiation and drives it; true when it completed.
  bool Renegotiate();

  int fd() const { return fd_; }
  SSL* ssl() { return ssl_; }

 private:
  std::string ErrorText(int ret);

  TlsClientOptions options_;
  int fd_ = -1;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  std::string error_;
  std::string pending_;  // bytes read past the last response
};

}  // namespace webtier::testing
