// HeadScanner: one pass over the head's bytes.
#include "webtier/webnode/request_head.h"

#include <cstring>

namespace webtier::webnode {

HeadScanner::State HeadScanner::Feed(std::string_view bytes) {
  if (state_ != State::kMore) return state_;
  size_t i = 0;
  for (; i < bytes.size() && state_ == State::kMore; ++i) {
    const char c = bytes[i];
    if (in_request_line_) {
      if (c == '\n') {
        if (!request_line_.empty() && request_line_.back() == '\r') request_line_.pop_back();
        if (!request_line_.empty()) in_request_line_ = false;  // else a blank line before the request: skipped
        continue;
      }
      // Whole runs up to the next LF at once (the target may be long).
      const size_t lf = bytes.find('\n', i);
      const size_t end = lf == std::string_view::npos ? bytes.size() : lf;
      request_line_.append(bytes.data() + i, end - i);
      i = end - 1;
      continue;
    }
    if (c == '\n') {
      if (line_length_ == 0) {
        state_ = State::kDone;
        break;
      }
      ++fields_;
      if (fields_ > max_fields_) {
        state_ = State::kTooManyFields;
        break;
      }
      if (line_length_ >= 5 && std::memcmp(line_start_, "host:", 5) == 0 && ++host_fields_ > 1) {
        state_ = State::kDuplicateHost;
        break;
      }
      line_length_ = 0;
      continue;
    }
    if (c == '\r') continue;
    if (line_length_ < sizeof line_start_) {
      line_start_[line_length_] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    }
    ++line_length_;
  }
  // On a refusal or the head's end the loop broke before counting that byte.
  head_bytes_ += state_ == State::kMore ? bytes.size() : i + 1;
  return state_;
}

std::string_view HeadScanner::method() const {
  std::string_view line = request_line_;
  return line.substr(0, line.find(' '));
}

std::string_view HeadScanner::target() const {
  std::string_view line = request_line_;
  const size_t sp = line.find(' ');
  if (sp == std::string_view::npos) return {};
  line.remove_prefix(sp + 1);
  return line.substr(0, line.find(' '));
}

void HeadScanner::Reset() {
  state_ = State::kMore;
  request_line_.clear();
  in_request_line_ = true;
  fields_ = 0;
  line_length_ = 0;
  host_fields_ = 0;
  head_bytes_ = 0;
}

}  // namespace webtier::webnode
