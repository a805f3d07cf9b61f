// W3C Trace Context parsing and formatting (see trace_context.h).
#include "webtier/common/trace_context.h"

#include <cstring>
#include <random>

namespace webtier {

namespace {

constexpr char kHex[] = "0123456789abcdef";

bool LowerHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool AllZero(std::string_view s) { return s.find_first_not_of('0') == std::string_view::npos; }

}  // namespace

void WriteRandomHex(char* out, size_t digits) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  for (size_t i = 0; i < digits; i += 16) {
    uint64_t v = rng();
    for (size_t j = 0; j < 16 && i + j < digits; ++j, v >>= 4) out[i + j] = kHex[v & 0xf];
  }
}

std::optional<TraceParent> ParseTraceparent(std::string_view value) {
  // version "-" trace-id "-" parent-id "-" trace-flags
  constexpr size_t kLength = 2 + 1 + kTraceIdLength + 1 + kSpanIdLength + 1 + 2;
  if (value.size() < kLength) return std::nullopt;
  const std::string_view version = value.substr(0, 2);
  if (!LowerHex(version) || version == "ff") return std::nullopt;
  if (version == "00" ? value.size() != kLength : value.size() > kLength && value[kLength] != '-')
    return std::nullopt;
  if (value[2] != '-' || value[3 + kTraceIdLength] != '-' || value[4 + kTraceIdLength + kSpanIdLength] != '-')
    return std::nullopt;
  TraceParent p;
  p.trace_id = value.substr(3, kTraceIdLength);
  p.parent_id = value.substr(4 + kTraceIdLength, kSpanIdLength);
  const std::string_view flags = value.substr(5 + kTraceIdLength + kSpanIdLength, 2);
  if (!LowerHex(p.trace_id) || !LowerHex(p.parent_id) || !LowerHex(flags)) return std::nullopt;
  if (AllZero(p.trace_id) || AllZero(p.parent_id)) return std::nullopt;
  p.sampled = std::strchr("13579bdf", flags[1]) != nullptr;  // an odd last digit: bit 0 set
  return p;
}

void NewTrace(RequestTrace* trace) {
  do {
    WriteRandomHex(trace->trace_id, kTraceIdLength);
  } while (AllZero({trace->trace_id, kTraceIdLength}));
  do {
    WriteRandomHex(trace->span_id, kSpanIdLength);
  } while (AllZero({trace->span_id, kSpanIdLength}));
  trace->continued = false;
  trace->sampled = false;
}

RequestTrace ChildOf(const std::optional<TraceParent>& parent) {
  RequestTrace trace;
  NewTrace(&trace);
  if (!parent) return trace;
  parent->trace_id.copy(trace.trace_id, kTraceIdLength);
  parent->parent_id.copy(trace.parent_id, kSpanIdLength);
  trace.continued = true;
  trace.sampled = parent->sampled;
  return trace;
}

namespace {

void AppendValue(const RequestTrace& trace, std::string& out) {
  out.append("00-", 3);
  out.append(trace.trace_id, kTraceIdLength);
  out.push_back('-');
  out.append(trace.span_id, kSpanIdLength);
  out.append(trace.sampled ? "-01" : "-00", 3);
}

}  // namespace

std::string TraceparentValue(const RequestTrace& trace) {
  std::string value;
  AppendValue(trace, value);
  return value;
}

void AppendTraceparent(const RequestTrace& trace, std::string& out) {
  out.append("traceparent: ", 13);
  AppendValue(trace, out);
  out.append("\r\n", 2);
}

}  // namespace webtier
