// W3C Trace Context (https://www.w3.org/TR/trace-context/, version 00), for
// both programs. At the edge the balancer continues a client's trace with a
// span of its own, or starts one; a webnode continues the balancer's. A member sees `traceparent: 00-<trace-id>-<the balancer's
// span>-<flags>`; `tracestate` goes on only with a valid traceparent. An
// invalid or repeated traceparent is not forwarded: a new trace starts, and
// its tracestate is dropped with it (the standard's rule: without a valid
// parent, the state means nothing).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace webtier {

inline constexpr size_t kTraceIdLength = 32;  // lower-case hex
inline constexpr size_t kSpanIdLength = 16;   // lower-case hex

struct TraceParent {
  std::string_view trace_id;   // 32 lower-case hex digits, not all zero
  std::string_view parent_id;  // 16 lower-case hex digits, not all zero
  bool sampled = false;        // trace-flags bit 0, the only flag version 00 defines
};

// Parses a traceparent value as version 00 defines it, and a later
// version's value by its version 00 prefix (the standard's forward
// compatibility: 55 characters, then nothing or '-'). Version ff, upper-case
// hex, an all-zero id, a wrong length or separator: nullopt. The views point
// into `value`.
std::optional<TraceParent> ParseTraceparent(std::string_view value);

// The trace context one request goes on with; filled by
// SerializeUpstreamRequest (http_rules.h).
struct RequestTrace {
  // In: a new trace's id, used when the client sent no valid traceparent.
  // Out: the trace's id (the client's when continued).
  char trace_id[kTraceIdLength];
  // In: the balancer's span, which the member sees as its parent.
  char span_id[kSpanIdLength];
  // Out: the client's span, the balancer's span's parent (when continued).
  char parent_id[kSpanIdLength];
  bool continued = false;  // out: the client's trace goes on
  bool sampled = false;    // out: as the client's traceparent said; a new trace is not sampled
  std::string_view trace_view() const { return {trace_id, kTraceIdLength}; }
};

// `digits` random lower-case hex digits from a per-thread generator (also
// the request ids' source, WriteRequestId in http_rules.h).
void WriteRandomHex(char* out, size_t digits);

// A new trace id and span id (never all zero) from that generator.
void NewTrace(RequestTrace* trace);

// A new span that continues `parent`'s trace (its id and sampled flag), or
// starts a new trace when there is no parent.
RequestTrace ChildOf(const std::optional<TraceParent>& parent);

// The traceparent value for `trace`: `00-<trace id>-<span id>-<flags>`.
std::string TraceparentValue(const RequestTrace& trace);

// Appends `traceparent: 00-...\r\n` for `trace` to `out`.
void AppendTraceparent(const RequestTrace& trace, std::string& out);

}  // namespace webtier
