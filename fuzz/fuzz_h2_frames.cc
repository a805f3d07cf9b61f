// libFuzzer target: the balancer's HTTP/2 codec (engine/h2_codec.h) and the
// rules that turn a stream's header block into a request (http/h2_rules.h).
// The input is what a client sends after the connection preface, fed in
// pieces; every request is answered with a small body so responses, flow
// control and closes run too. Checks: no crash or sanitizer report, the
// codec's memory within its bound, and a request that builds always has a
// method, a target and a Host.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "engine/h2_codec.h"

namespace {

using namespace webtier::balancer;
namespace http = boost::beast::http;

class Events : public H2Events {
 public:
  H2Codec* codec = nullptr;

  H2RequestHead* OnRequestBegin(int32_t id) override {
    if (heads_.size() >= 8) return nullptr;  // refused: the codec's other path
    return &heads_.emplace(id, std::make_unique<Stream>(100, 16 * 1024)).first->second->head;
  }
  void OnRequestHead(int32_t id, bool) override {
    auto it = heads_.find(id);
    if (it == heads_.end()) return;
    http::request<http::string_body> req;
    const bool refused = it->second->head.Build(req).has_value();
    if (!refused && (req.method_string().empty() || req.target().empty() || req[http::field::host].empty()))
      std::abort();
    std::vector<H2Field> fields{{"content-type", "text/plain"}};
    it->second->body = refused ? "refused" : "answer body";
    codec->Respond(id, refused ? 400 : 200, fields, true);
  }
  void OnRequestData(int32_t id, std::string_view data) override { codec->Consume(id, data.size()); }
  void OnRequestEnd(int32_t) override {}
  void OnStreamClose(int32_t id, uint32_t) override { heads_.erase(id); }
  bool ResponseFailed(int32_t id) override { return id % 7 == 0; }
  size_t ReadResponseBody(int32_t id, uint8_t* out, size_t length, bool* eof) override {
    auto it = heads_.find(id);
    if (it == heads_.end()) {
      *eof = true;
      return 0;
    }
    std::string& body = it->second->body;
    const size_t n = std::min(length, body.size());
    std::copy(body.begin(), body.begin() + static_cast<std::ptrdiff_t>(n), out);
    body.erase(0, n);
    *eof = body.empty();
    return n;
  }

 private:
  struct Stream {
    Stream(size_t fields, size_t bytes) : head(fields, bytes) {}
    H2RequestHead head;
    std::string body;
  };
  std::map<int32_t, std::unique_ptr<Stream>> heads_;
};

void Drain(H2Codec& codec) {
  for (int i = 0; i < 64; ++i) {
    if (codec.Send().empty()) break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte picks the size of the pieces the rest arrives in.
  const size_t piece = 1 + data[0] % 64 * 16;
  data++;
  size--;
  Events events;
  H2Limits limits;
  limits.memory_bytes = 256 * 1024;
  H2Codec codec(events, limits);
  events.codec = &codec;
  static constexpr std::string_view kStart =
      "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
      "\x00\x00\x00\x04\x00\x00\x00\x00\x00";  // the preface and an empty SETTINGS
  bool ok = codec.Receive(reinterpret_cast<const uint8_t*>(kStart.data()), kStart.size());
  Drain(codec);
  for (size_t at = 0; ok && at < size; at += piece) {
    ok = codec.Receive(data + at, std::min(piece, size - at));
    Drain(codec);
    if (codec.memory() > limits.memory_bytes) std::abort();
  }
  return 0;
}
