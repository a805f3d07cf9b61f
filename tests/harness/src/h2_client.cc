// A blocking HTTP/2 client for the tests (see h2_client.h).
#include "webtier/testing/h2_client.h"

#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "webtier/testing/harness.h"
#include "webtier/testing/tls.h"

namespace webtier::testing {

// `fields` as nghttp2 takes them (viewing the strings).
std::vector<nghttp2_nv> HeaderList(std::vector<std::pair<std::string, std::string>>& fields) {
  std::vector<nghttp2_nv> nva;
  for (auto& [n, v] : fields) {
    nva.push_back({reinterpret_cast<uint8_t*>(n.data()), reinterpret_cast<uint8_t*>(v.data()), n.size(), v.size(),
                   NGHTTP2_NV_FLAG_NONE});
  }
  return nva;
}

struct H2ClientCallbacks {
  static H2Client& Client(void* user) { return *static_cast<H2Client*>(user); }

  static int Header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                    const uint8_t* value, size_t valuelen, uint8_t, void* user) {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    H2Client::Response& r = Client(user).streams_[frame->hd.stream_id].response;
    const std::string n(reinterpret_cast<const char*>(name), namelen);
    const std::string v(reinterpret_cast<const char*>(value), valuelen);
    if (n == ":status") r.status = std::atoi(v.c_str());
    else if (frame->headers.cat == NGHTTP2_HCAT_HEADERS && r.status >= 200) r.trailers.emplace(n, v);
    else if (r.status >= 200) r.headers.emplace(n, v);
    return 0;
  }

  static int FrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    H2Client& c = Client(user);
    if (frame->hd.type == NGHTTP2_HEADERS) {
      auto it = c.streams_.find(frame->hd.stream_id);
      if (it != c.streams_.end() && it->second.response.status >= 100 && it->second.response.status < 200) {
        it->second.response.interim.push_back(it->second.response.status);
        it->second.response.status = 0;
      }
    } else if (frame->hd.type == NGHTTP2_GOAWAY) {
      c.goaway_ = true;
      c.goaway_code_ = frame->goaway.error_code;
      c.goaway_last_stream_ = frame->goaway.last_stream_id;
    }
    return 0;
  }

  static int Data(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len, void* user) {
    Client(user).streams_[id].response.body.append(reinterpret_cast<const char*>(data), len);
    return 0;
  }

  static int Close(nghttp2_session*, int32_t id, uint32_t code, void* user) {
    H2Client::Response& r = Client(user).streams_[id].response;
    r.closed = true;
    r.reset = code;
    return 0;
  }

  static ssize_t ReadBody(nghttp2_session*, int32_t id, uint8_t* buf, size_t length, uint32_t* flags,
                          nghttp2_data_source*, void* user) {
    H2Client::Stream& s = Client(user).streams_[id];
    const size_t n = std::min(length, s.body.size() - s.sent);
    if (n == 0 && s.open && !s.end) return NGHTTP2_ERR_DEFERRED;  // SendData resumes it
    std::memcpy(buf, s.body.data() + s.sent, n);
    s.sent += n;
    if (s.sent == s.body.size() && (!s.open || s.end)) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  }
};

H2Client::H2Client(uint16_t port, bool tls, std::chrono::milliseconds timeout) : port_(port), timeout_(timeout) {
  if (tls) {
    TlsClientOptions options;
    options.alpn = {"h2"};
    options.timeout = timeout;
    tls_ = std::make_unique<TlsClient>(port, options);
    if (!tls_->Handshake()) {
      error_ = "TLS handshake: " + tls_->error();
      return;
    }
    if (tls_->alpn() != "h2") {
      error_ = "the server did not select h2 (ALPN: " + tls_->alpn() + ")";
      return;
    }
    fd_ = tls_->fd();
  } else {
    fd_ = ConnectLoopback(port, timeout);
    if (fd_ < 0) {
      error_ = "connect refused";
      return;
    }
  }
  timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
  ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  nghttp2_session_callbacks* cb;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_on_header_callback(cb, H2ClientCallbacks::Header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, H2ClientCallbacks::FrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, H2ClientCallbacks::Data);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, H2ClientCallbacks::Close);
  nghttp2_session_client_new(&session_, cb, this);
  nghttp2_session_callbacks_del(cb);
  const nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
                                             {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20}};
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, 2);
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, 16 << 20);
  if (!Step(std::chrono::milliseconds(0))) error_ = "the connection ended at once";
}

H2Client::~H2Client() {
  if (session_ != nullptr) nghttp2_session_del(session_);
  if (!tls_ && fd_ >= 0) ::close(fd_);
}

int32_t H2Client::Submit(const std::string& method, const std::string& path,
                         const std::vector<std::pair<std::string, std::string>>& headers, std::string body,
                         const std::string& authority) {
  if (session_ == nullptr) return -1;
  const std::string host = authority.empty() ? "127.0.0.1:" + std::to_string(port_) : authority;
  const std::string scheme = tls_ ? "https" : "http";
  std::vector<std::pair<std::string, std::string>> all = {
      {":method", method}, {":scheme", scheme}, {":authority", host}, {":path", path}};
  all.insert(all.end(), headers.begin(), headers.end());
  const std::vector<nghttp2_nv> nva = HeaderList(all);
  nghttp2_data_provider provider{};
  provider.read_callback = H2ClientCallbacks::ReadBody;
  const bool has_body = !body.empty();
  const int32_t id = nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(), has_body ? &provider : nullptr,
                                            nullptr);
  if (id > 0) streams_[id].body = std::move(body);
  Step(std::chrono::milliseconds(0));  // the HEADERS go out now (a Cancel right after must find them sent)
  return id;
}

int32_t H2Client::Open(const std::string& method, const std::string& path,
                       const std::vector<std::pair<std::string, std::string>>& headers) {
  return OpenStream({{":method", method}}, path, headers);
}

int32_t H2Client::OpenWebSocket(const std::string& path,
                                const std::vector<std::pair<std::string, std::string>>& headers) {
  if (session_ == nullptr) return -1;
  const bool allowed = PumpUntil(
      [&] { return nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL) == 1; },
      timeout_);
  if (!allowed) return -1;
  return OpenStream({{":method", "CONNECT"}, {":protocol", "websocket"}}, path, headers);
}

int32_t H2Client::OpenStream(std::vector<std::pair<std::string, std::string>> all, const std::string& path,
                             const std::vector<std::pair<std::string, std::string>>& headers) {
  if (session_ == nullptr) return -1;
  all.insert(all.end(), {{":scheme", tls_ ? "https" : "http"},
                         {":authority", "127.0.0.1:" + std::to_string(port_)},
                         {":path", path}});
  all.insert(all.end(), headers.begin(), headers.end());
  const std::vector<nghttp2_nv> nva = HeaderList(all);
  nghttp2_data_provider provider{};
  provider.read_callback = H2ClientCallbacks::ReadBody;
  const int32_t id = nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(), &provider, nullptr);
  if (id > 0) streams_[id].open = true;
  Step(std::chrono::milliseconds(0));
  return id;
}

void H2Client::SendData(int32_t id, std::string_view data, bool end) {
  Stream& s = streams_[id];
  s.body.append(data);
  s.end = s.end || end;
  nghttp2_session_resume_data(session_, id);
  Step(std::chrono::milliseconds(0));
}

bool H2Client::PumpUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= until) return false;
    if (!Step(std::chrono::milliseconds(10))) return done();
  }
  return true;
}

void H2Client::Cancel(int32_t id) {
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
  Step(std::chrono::milliseconds(0));
}

void H2Client::Ping() {
  nghttp2_submit_ping(session_, NGHTTP2_FLAG_NONE, nullptr);
  Step(std::chrono::milliseconds(0));
}

uint32_t H2Client::max_concurrent_streams() const {
  return nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

long H2Client::Read(char* buffer, size_t length) {
  if (tls_) {
    const int n = SSL_read(tls_->ssl(), buffer, static_cast<int>(length));
    return n > 0 ? n : -1;
  }
  const ssize_t n = ::recv(fd_, buffer, length, 0);
  return n > 0 ? n : -1;
}

bool H2Client::Write(std::string_view data) {
  while (!data.empty()) {
    long n;
    if (tls_) n = SSL_write(tls_->ssl(), data.data(), static_cast<int>(data.size()));
    else n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool H2Client::SendRaw(std::string_view bytes) {
  if (disconnected_ || !Write(bytes)) {
    disconnected_ = true;
    return false;
  }
  return true;
}

bool H2Client::Step(std::chrono::milliseconds wait) {
  if (disconnected_ || session_ == nullptr) return false;
  for (;;) {
    const uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n <= 0) break;
    if (!Write(std::string_view(reinterpret_cast<const char*>(data), static_cast<size_t>(n)))) {
      disconnected_ = true;
      return false;
    }
  }
  const bool pending = tls_ && SSL_pending(tls_->ssl()) > 0;
  if (!pending) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(wait.count())) <= 0) return true;
  }
  char buffer[16384];
  const long n = Read(buffer, sizeof buffer);
  if (n <= 0) {
    disconnected_ = true;
    return false;
  }
  if (nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(buffer), static_cast<size_t>(n)) < 0) {
    error_ = "the server broke the protocol";
    disconnected_ = true;
    return false;
  }
  return true;
}

bool H2Client::WaitAll(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    bool all = true;
    for (const auto& [id, s] : streams_) all = all && s.response.closed;
    if (all) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    if (!Step(std::chrono::milliseconds(50))) {
      for (const auto& [id, s] : streams_) all = all && s.response.closed;
      return all;
    }
  }
}

void H2Client::Pump(std::chrono::milliseconds d) {
  const auto deadline = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < deadline && Step(std::chrono::milliseconds(20))) {
  }
}

H2Client::Response H2Client::Request(const std::string& method, const std::string& path,
                                     const std::vector<std::pair<std::string, std::string>>& headers,
                                     std::string body) {
  const int32_t id = Submit(method, path, headers, std::move(body));
  if (id < 0) return {};
  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  while (!streams_[id].response.closed && std::chrono::steady_clock::now() < deadline &&
         Step(std::chrono::milliseconds(100))) {
  }
  return streams_[id].response;
}

}  // namespace webtier::testing
