// HeadScanner: reads a request's head as it arrives, once, before Pistache
// parses it. Pistache 0.0.5 re-parses the whole head from its first byte each
// time more bytes arrive until the head is complete (quadratic in the number
// of packets), and has no limit on the number of fields; the server feeds it
// the head only once this scanner has seen all of it, and refuses a request
// with too many fields (or two Host fields, which Pistache would fold into
// one) as soon as the line that crosses the limit arrives. Linear in the
// input; one instance per connection.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace webtier::webnode {

class HeadScanner {
 public:
  enum class State { kMore, kDone, kTooManyFields, kDuplicateHost };

  explicit HeadScanner(size_t max_fields) : max_fields_(max_fields) {}

  // Reads the next bytes of the connection. Returns kMore until the empty
  // line that ends the head; then (or on a refusal) the same state on every
  // later call, whatever the bytes (the rest is the body).
  State Feed(std::string_view bytes);
  State state() const { return state_; }

  // The request line's first and second words (valid once kDone).
  std::string_view method() const;
  std::string_view target() const;

  // Bytes of the head read so far, its final empty line included (and any
  // blank lines before the request line): where the body starts once kDone.
  size_t head_bytes() const { return head_bytes_; }

  // For the next request on the connection.
  void Reset();

 private:
  size_t max_fields_;
  State state_ = State::kMore;
  std::string request_line_;   // without CR LF; empty lines before it are skipped
  bool in_request_line_ = true;
  size_t fields_ = 0;
  size_t line_length_ = 0;     // bytes of the current field line, CR excluded
  char line_start_[5] = {};    // its first bytes, lower-cased (to find "host:")
  int host_fields_ = 0;
  size_t head_bytes_ = 0;
};

}  // namespace webtier::webnode
