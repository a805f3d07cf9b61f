// A blocking HTTP/2 client for the tests, on libnghttp2's client session:
// h2c with prior knowledge, or h2 over TLS (ALPN). Several streams at once on
// one connection, request bodies of any size (sent as the server's flow
// control allows), resets, and what the server said in GOAWAY. Also raw
// bytes, for the abuse tests. One H2Client per thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

struct nghttp2_session;

namespace webtier::testing {

class TlsClient;

class H2Client {
 public:
  struct Response {
    int status = 0;                              // the final status; 0: none came
    std::multimap<std::string, std::string> headers;  // lower-case names
    std::vector<int> interim;                    // 1xx statuses on the way
    std::string body;
    std::multimap<std::string, std::string> trailers;  // a HEADERS block after the body
    bool closed = false;                         // the stream ended (answered whole, or reset)
    uint32_t reset = 0;                          // RST_STREAM error code; 0: none
    std::string header(const std::string& name) const {
      auto it = headers.find(name);
      return it == headers.end() ? "" : it->second;
    }
  };

  // Connects to 127.0.0.1:`port` and sends the preface and SETTINGS; over
  // TLS offering only h2 in ALPN. ok() says whether that worked.
  explicit H2Client(uint16_t port, bool tls = false, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  ~H2Client();
  H2Client(const H2Client&) = delete;
  H2Client& operator=(const H2Client&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

  // Starts a request; the stream id (negative on failure). `authority`
  // empty: 127.0.0.1:port.
  int32_t Submit(const std::string& method, const std::string& path,
                 const std::vector<std::pair<std::string, std::string>>& headers = {}, std::string body = "",
                 const std::string& authority = "");
  // Starts a request whose body is still to come (SendData), so the stream
  // stays open on the client's side; the stream id (negative on failure).
  int32_t Open(const std::string& method, const std::string& path,
               const std::vector<std::pair<std::string, std::string>>& headers = {});
  // Opens a WebSocket stream (RFC 8441: CONNECT with :protocol websocket,
  // no END_STREAM) once the server's SETTINGS allow it; the stream id, or -1
  // when the server never sent SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 (within
  // the constructor's timeout).
  int32_t OpenWebSocket(const std::string& path, const std::vector<std::pair<std::string, std::string>>& headers = {});
  // Queues `data` on a stream opened by Open or OpenWebSocket; END_STREAM after it
  // when `end`.
  void SendData(int32_t id, std::string_view data, bool end = false);
  // Runs the connection until `done()` holds, the connection ended, or
  // `timeout` passed; whether `done()` held.
  bool PumpUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Sends RST_STREAM(CANCEL) on `id`.
  void Cancel(int32_t id);
  // Sends a PING.
  void Ping();
  // Runs the connection until every submitted stream has closed, the
  // connection ended, or `timeout` passed; true in the first case.
  bool WaitAll(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Runs it for `d` (reading and answering what comes).
  void Pump(std::chrono::milliseconds d);
  // One request, waited for (at most the constructor's timeout).
  Response Request(const std::string& method, const std::string& path,
                   const std::vector<std::pair<std::string, std::string>>& headers = {}, std::string body = "");

  const Response& response(int32_t id) { return streams_[id].response; }

  // Raw bytes to the server (after the preface), for abuse tests; false
  // once the connection is broken.
  bool SendRaw(std::string_view bytes);

  bool goaway() const { return goaway_; }
  uint32_t goaway_code() const { return goaway_code_; }
  int32_t goaway_last_stream() const { return goaway_last_stream_; }
  // The server closed the connection (EOF or reset).
  bool disconnected() const { return disconnected_; }
  // The server's SETTINGS_MAX_CONCURRENT_STREAMS (0 until known).
  uint32_t max_concurrent_streams() const;

 private:
  // Submits a request whose body is still to come (SendData): `pseudo` (its
  // method, and :protocol), then :scheme, :authority, `path` and `headers`.
  int32_t OpenStream(std::vector<std::pair<std::string, std::string>> pseudo, const std::string& path,
                     const std::vector<std::pair<std::string, std::string>>& headers);

  struct Stream {
    Response response;
    std::string body;  // what is still to send
    size_t sent = 0;
    bool open = false;  // a WebSocket stream: more may come (SendData)
    bool end = false;   // ... until this is set
  };
  friend struct H2ClientCallbacks;
  // One round: sends what the session has, reads what is there (waiting up
  // to `wait`). False once the connection is done.
  bool Step(std::chrono::milliseconds wait);
  long Read(char* buffer, size_t length);
  bool Write(std::string_view data);

  uint16_t port_;
  std::chrono::milliseconds timeout_;  // of Request()
  int fd_ = -1;
  std::unique_ptr<TlsClient> tls_;
  nghttp2_session* session_ = nullptr;
  std::string error_;
  std::map<int32_t, Stream> streams_;
  bool goaway_ = false;
  uint32_t goaway_code_ = 0;
  int32_t goaway_last_stream_ = -1;
  bool disconnected_ = false;
};

}  // namespace webtier::testing
