// HTTP/2 framing on libnghttp2 (see h2_codec.h).
#include "engine/h2_codec.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace webtier::balancer {

namespace {

// Every allocation carries its size in front (16 bytes keep the alignment).
constexpr size_t kPrefix = 16;

void AddField(std::vector<nghttp2_nv>& nva, std::string_view name, std::string_view value) {
  nva.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                 reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
                 NGHTTP2_NV_FLAG_NONE});
}

}  // namespace

const char* H2AbuseName(H2Abuse abuse) {
  switch (abuse) {
    case H2Abuse::kNone: return "none";
    case H2Abuse::kRapidReset: return "rapid_reset";
    case H2Abuse::kControlFlood: return "control_flood";
    case H2Abuse::kContinuation: return "continuation_flood";
    case H2Abuse::kAckFlood: return "ack_flood";
    case H2Abuse::kMemory: return "memory";
    case H2Abuse::kResetFlood: return "reset_flood";
    case H2Abuse::kCount: break;
  }
  return "unknown";
}

bool H2Codec::Budget::Take() {
  const auto now = Clock::now();
  tokens = std::min(burst, tokens + rate * std::chrono::duration<double>(now - last).count());
  last = now;
  if (tokens < 1) return false;
  tokens -= 1;
  return true;
}

// nghttp2's callbacks, with the codec as user data.
struct H2Callbacks {
  static H2Codec& Codec(void* user) { return *static_cast<H2Codec*>(user); }

  // The allocator: counts the connection's memory, refuses past the bound.
  static void* Malloc(size_t size, void* user) {
    H2Codec& c = Codec(user);
    if (c.memory_ + size > c.limits_.memory_bytes) {
      c.Abuse(H2Abuse::kMemory);
      return nullptr;
    }
    auto* p = static_cast<unsigned char*>(std::malloc(size + kPrefix));
    if (p == nullptr) return nullptr;
    std::memcpy(p, &size, sizeof size);
    c.memory_ += size;
    return p + kPrefix;
  }
  static void Free(void* ptr, void* user) {
    if (ptr == nullptr) return;
    auto* p = static_cast<unsigned char*>(ptr) - kPrefix;
    size_t size;
    std::memcpy(&size, p, sizeof size);
    Codec(user).memory_ -= size;
    std::free(p);
  }
  static void* Calloc(size_t n, size_t size, void* user) {
    if (size != 0 && n > SIZE_MAX / size - kPrefix) return nullptr;
    void* p = Malloc(n * size, user);
    if (p != nullptr) std::memset(p, 0, n * size);
    return p;
  }
  static void* Realloc(void* ptr, size_t size, void* user) {
    if (ptr == nullptr) return Malloc(size, user);
    size_t old;
    std::memcpy(&old, static_cast<unsigned char*>(ptr) - kPrefix, sizeof old);
    void* p = Malloc(size, user);
    if (p == nullptr) return nullptr;
    std::memcpy(p, ptr, std::min(old, size));
    Free(ptr, user);
    return p;
  }

  static int BeginHeaders(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
    H2Codec& c = Codec(user);
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    const int32_t id = frame->hd.stream_id;
    H2RequestHead* head = c.events_.OnRequestBegin(id);
    if (head == nullptr) {  // its fields and frames are ignored from here
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
      return 0;
    }
    c.streams_[id] = H2Codec::Stream{head, false};
    return 0;
  }

  static int Header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                    const uint8_t* value, size_t valuelen, uint8_t, void* user) {
    H2Codec& c = Codec(user);
    // A trailer (HCAT_HEADERS) is dropped, as an HTTP/1.1 request's is.
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    auto it = c.streams_.find(frame->hd.stream_id);
    if (it == c.streams_.end()) return 0;
    it->second.head->Add(std::string_view(reinterpret_cast<const char*>(name), namelen),
                         std::string_view(reinterpret_cast<const char*>(value), valuelen));
    return 0;
  }

  static int FrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    H2Codec& c = Codec(user);
    const int32_t id = frame->hd.stream_id;
    const bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    switch (frame->hd.type) {
      case NGHTTP2_HEADERS:
        if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
          if (c.streams_.count(id) != 0) c.events_.OnRequestHead(id, end_stream);
        } else if (end_stream) {
          if (c.streams_.count(id) != 0) c.events_.OnRequestEnd(id);
        } else if (!c.control_.Take()) {  // a header block that ends nothing
          c.Abuse(H2Abuse::kControlFlood);
        }
        break;
      case NGHTTP2_DATA:
        if (end_stream && c.streams_.count(id) != 0) c.events_.OnRequestEnd(id);
        break;
      case NGHTTP2_RST_STREAM: {
        auto it = c.streams_.find(id);
        if (it != c.streams_.end() && !it->second.answered && !c.resets_.Take()) c.Abuse(H2Abuse::kRapidReset);
        break;
      }
      default: break;
    }
    return 0;
  }

  // Every frame's header, before its payload: the control-frame budget
  // (PRIORITY frames never reach FrameRecv), and the order of stream ids.
  static int BeginFrame(nghttp2_session* session, const nghttp2_frame_hd* hd, void* user) {
    H2Codec& c = Codec(user);
    const bool ack = (hd->flags & NGHTTP2_FLAG_ACK) != 0;
    switch (hd->type) {
      case NGHTTP2_SETTINGS:
      case NGHTTP2_PING:
        if (!ack && !c.control_.Take()) c.Abuse(H2Abuse::kControlFlood);
        break;
      case NGHTTP2_PRIORITY:
        if (!c.control_.Take()) c.Abuse(H2Abuse::kControlFlood);
        break;
      case NGHTTP2_DATA:
        if (hd->length == 0 && (hd->flags & NGHTTP2_FLAG_END_STREAM) == 0 && !c.control_.Take())
          c.Abuse(H2Abuse::kControlFlood);
        break;
      case NGHTTP2_HEADERS:
        // A new stream's id must be above every id used before (RFC 9113
        // 5.1.1); nghttp2 takes a lower, never-used one for a closed stream
        // and ignores it.
        if ((hd->stream_id & 1) != 0 && hd->stream_id < c.highest_stream_ && c.streams_.count(hd->stream_id) == 0 &&
            !c.RecentlyClosed(hd->stream_id)) {
          nghttp2_session_terminate_session(session, NGHTTP2_PROTOCOL_ERROR);
        }
        c.highest_stream_ = std::max(c.highest_stream_, hd->stream_id);
        break;
      default: break;
    }
    return 0;
  }

  static int DataChunk(nghttp2_session* session, uint8_t, int32_t id, const uint8_t* data, size_t len, void* user) {
    H2Codec& c = Codec(user);
    if (c.streams_.count(id) == 0) {  // a stream nobody reads: its bytes count for nothing
      nghttp2_session_consume(session, id, len);
      return 0;
    }
    c.events_.OnRequestData(id, std::string_view(reinterpret_cast<const char*>(data), len));
    return 0;
  }

  static int StreamClose(nghttp2_session*, int32_t id, uint32_t code, void* user) {
    H2Codec& c = Codec(user);
    c.closed_[c.closed_next_++ % c.closed_.size()] = id;
    if (c.streams_.erase(id) != 0) c.events_.OnStreamClose(id, code);
    return 0;
  }

  static int FrameSend(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
    H2Codec& c = Codec(user);
    // A whole answer went out before the client finished its request (an
    // early 413, a refused upgrade, a tunnel the member closed): nothing
    // reads the rest, so ask the client to stop sending it, without error
    // (RFC 9113 8.1). Queued now, it leaves after the answer's last frame.
    if ((frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0 &&
        nghttp2_session_get_stream_remote_close(session, frame->hd.stream_id) == 0) {
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
    }
    if (frame->hd.type == NGHTTP2_GOAWAY) {
      c.goaway_sent_ = frame->goaway.error_code;
      // nghttp2's own RST_STREAM rate limit ends the connection this way.
      if (frame->goaway.error_code == NGHTTP2_ENHANCE_YOUR_CALM && c.abuse_ == H2Abuse::kNone)
        c.abuse_ = H2Abuse::kResetFlood;
    }
    return 0;
  }

  static ssize_t ReadBody(nghttp2_session* session, int32_t id, uint8_t* buf, size_t length, uint32_t* flags,
                          nghttp2_data_source*, void* user) {
    H2Codec& c = Codec(user);
    bool eof = false;
    const size_t n = c.events_.ReadResponseBody(id, buf, length, &eof);
    if (eof) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      // A trailer section goes as a HEADERS frame that ends the stream instead.
      const std::vector<H2Trailer>* trailers = c.events_.ResponseTrailers(id);
      if (trailers != nullptr && !trailers->empty()) {
        c.nva_.clear();
        for (const auto& [name, value] : *trailers) AddField(c.nva_, name, value);
        if (nghttp2_submit_trailer(session, id, c.nva_.data(), c.nva_.size()) == 0)
          *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      }
    } else if (n == 0) {
      return c.events_.ResponseFailed(id) ? NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE : NGHTTP2_ERR_DEFERRED;
    }
    return static_cast<ssize_t>(n);
  }
};

H2Codec::H2Codec(H2Events& events, const H2Limits& limits)
    : events_(events),
      limits_(limits),
      resets_{kResetBurst, kResetBurst, kResetRate, Clock::now()},
      control_{kControlBurst, kControlBurst, kControlRate, Clock::now()} {
  nghttp2_session_callbacks* cb;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, H2Callbacks::BeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(cb, H2Callbacks::Header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, H2Callbacks::FrameRecv);
  nghttp2_session_callbacks_set_on_begin_frame_callback(cb, H2Callbacks::BeginFrame);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, H2Callbacks::DataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, H2Callbacks::StreamClose);
  nghttp2_session_callbacks_set_on_frame_send_callback(cb, H2Callbacks::FrameSend);
  nghttp2_option* opt;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_max_continuations(opt, kMaxContinuations);
  nghttp2_option_set_stream_reset_rate_limit(opt, 1000, 100);
  nghttp2_option_set_max_settings(opt, 32);
  nghttp2_option_set_max_outbound_ack(opt, 1000);
  nghttp2_option_set_no_closed_streams(opt, 1);
  // Answers are encoded with the static table and literals only, as HAProxy
  // and nginx encode theirs: indexing fields that change with every answer
  // (X-Request-Id, Date, Content-Length) would cost a table insertion and an
  // eviction each, for bytes a small answer hardly notices.
  nghttp2_option_set_max_deflate_dynamic_table_size(opt, 0);
  nghttp2_mem mem{this, H2Callbacks::Malloc, H2Callbacks::Free, H2Callbacks::Calloc, H2Callbacks::Realloc};
  nghttp2_session_server_new3(&session_, cb, this, opt, &mem);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cb);
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, limits_.max_streams},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<uint32_t>(limits_.max_header_bytes)},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(limits_.stream_window)},
      {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1},  // WebSocket over HTTP/2 (RFC 8441)
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, limits_.connection_window);
}

H2Codec::~H2Codec() { nghttp2_session_del(session_); }

bool H2Codec::RecentlyClosed(int32_t id) const {
  return std::find(closed_.begin(), closed_.end(), id) != closed_.end();
}

void H2Codec::Abuse(H2Abuse kind) {
  if (abuse_ != H2Abuse::kNone) return;
  abuse_ = kind;
  if (kind != H2Abuse::kMemory) nghttp2_session_terminate_session(session_, NGHTTP2_ENHANCE_YOUR_CALM);
}

bool H2Codec::Receive(const uint8_t* data, size_t length) {
  if (abuse_ != H2Abuse::kNone) return false;
  const ssize_t n = nghttp2_session_mem_recv(session_, data, length);
  if (n < 0) {
    error_ = static_cast<int>(n);
    if (n == NGHTTP2_ERR_FLOODED) Abuse(H2Abuse::kAckFlood);
    else if (n == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS) Abuse(H2Abuse::kContinuation);
    else if (n == NGHTTP2_ERR_NOMEM && abuse_ == H2Abuse::kNone) abuse_ = H2Abuse::kMemory;
    // A broken preface gets no GOAWAY; anything else tells the client why.
    else if (n != NGHTTP2_ERR_BAD_CLIENT_MAGIC) nghttp2_session_terminate_session(session_, NGHTTP2_PROTOCOL_ERROR);
    return false;
  }
  return abuse_ == H2Abuse::kNone;
}

std::string_view H2Codec::Send() {
  const uint8_t* data = nullptr;
  const ssize_t n = nghttp2_session_mem_send(session_, &data);
  if (n <= 0) return {};
  return {reinterpret_cast<const char*>(data), static_cast<size_t>(n)};
}

bool H2Codec::WantRead() const { return nghttp2_session_want_read(session_) != 0; }
bool H2Codec::WantWrite() const { return nghttp2_session_want_write(session_) != 0; }

namespace {

void StatusDigits(int status, char (&out)[3]) {
  out[0] = static_cast<char>('0' + status / 100 % 10);
  out[1] = static_cast<char>('0' + status / 10 % 10);
  out[2] = static_cast<char>('0' + status % 10);
}

}  // namespace

const std::vector<nghttp2_nv>& H2Codec::HeaderList(int status, const std::vector<H2Field>& fields, char (&digits)[3]) {
  StatusDigits(status, digits);
  nva_.clear();
  AddField(nva_, ":status", std::string_view(digits, 3));
  for (const H2Field& f : fields) AddField(nva_, f.first, f.second);
  return nva_;
}

bool H2Codec::Respond(int32_t id, int status, const std::vector<H2Field>& fields, bool has_body) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return false;
  it->second.answered = true;
  char digits[3];
  const std::vector<nghttp2_nv>& nva = HeaderList(status, fields, digits);
  nghttp2_data_provider provider{};
  provider.read_callback = H2Callbacks::ReadBody;
  return nghttp2_submit_response(session_, id, nva.data(), nva.size(), has_body ? &provider : nullptr) == 0;
}

void H2Codec::Interim(int32_t id, int status, const std::vector<H2Field>& fields) {
  if (streams_.count(id) == 0) return;
  char digits[3];
  const std::vector<nghttp2_nv>& nva = HeaderList(status, fields, digits);
  nghttp2_submit_headers(session_, NGHTTP2_FLAG_NONE, id, nullptr, nva.data(), nva.size(), nullptr);
}

void H2Codec::Resume(int32_t id) { nghttp2_session_resume_data(session_, id); }

void H2Codec::Reset(int32_t id, uint32_t code) { nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, code); }

void H2Codec::Consume(int32_t id, size_t length) {
  if (length == 0) return;
  // (A stream already closed still gives back its share of the connection's window.)
  nghttp2_session_consume(session_, id, length);
}

void H2Codec::ShutdownNotice() { nghttp2_submit_shutdown_notice(session_); }

void H2Codec::GoAway() {
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session_),
                        NGHTTP2_NO_ERROR, nullptr, 0);
}

void H2Codec::Terminate(uint32_t code) { nghttp2_session_terminate_session(session_, code); }

}  // namespace webtier::balancer
