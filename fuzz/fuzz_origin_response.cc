// Fuzzes the webnode's reading of an origin's answer (OriginResponseReader,
// webnode/include/webtier/webnode/http_origin.h): the first byte picks HEAD
// or GET and how the bytes are cut, the rest is what the origin sends. The
// same bytes fed whole and fed in cuts must give the same verdict and the
// same answer; a finished answer's body never exceeds the limit; nothing
// may crash or throw.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "webtier/webnode/http_origin.h"

namespace {

using webtier::cache::OriginResponseReader;
using webtier::cache::Response;

constexpr size_t kMaxHeader = 512;
constexpr size_t kMaxBody = 2048;

struct Verdict {
  OriginResponseReader::Result result;
  bool reusable = false;
  Response response;
};

Verdict Read(std::string_view in, bool head, size_t cut, bool eof) {
  OriginResponseReader reader(head, kMaxHeader, kMaxBody);
  Verdict v{OriginResponseReader::Result::kMore};
  // Bytes after the end are fed too: they make the connection unusable.
  while (!in.empty() && v.result != OriginResponseReader::Result::kError) {
    const size_t n = cut == 0 ? in.size() : std::min(cut, in.size());
    v.result = reader.Feed(in.substr(0, n));
    in.remove_prefix(n);
  }
  if (v.result == OriginResponseReader::Result::kMore && eof) v.result = reader.Eof();
  if (v.result == OriginResponseReader::Result::kDone) {
    v.reusable = reader.reusable();
    v.response = reader.TakeResponse();
    if (v.response.body.size() > kMaxBody || v.response.status < 200 || v.response.status > 999) std::abort();
  }
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool head = (data[0] & 1) != 0;
  const bool eof = (data[0] & 2) != 0;
  const size_t cut = 1 + (data[0] >> 2) % 7;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  const Verdict whole = Read(in, head, 0, eof);
  const Verdict pieces = Read(in, head, cut, eof);
  if (whole.result != pieces.result) std::abort();
  if (whole.result == OriginResponseReader::Result::kDone &&
      (whole.reusable != pieces.reusable || whole.response.status != pieces.response.status ||
       whole.response.body != pieces.response.body || whole.response.headers != pieces.response.headers)) {
    std::abort();
  }
  return 0;
}
