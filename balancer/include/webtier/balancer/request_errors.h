// What the proxy answers when a client's request cannot be read or must not
// be forwarded: the status, the `reason` label of
// balancer_rejected_requests_total and the error text. Pure; safe anywhere.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <boost/system/error_code.hpp>

#include "webtier/balancer/http_rules.h"
#include "webtier/balancer/proxy_metrics.h"

namespace webtier::balancer {

// The proxy's own bounds on a request body's framing, raised while it is read
// (Beast 1.81 bounds neither a chunk-size line nor the trailer section, and
// would buffer either without end).
enum class BodyLimit {
  kChunkLineTooLong = 1,  // a chunk-size line with its extensions over kMaxChunkLineBytes
  kTrailerTooLarge,       // a trailer section over --max-header-bytes
  kBodyTimeout,           // the body not complete within --body-timeout-ms
};
boost::system::error_code MakeErrorCode(BodyLimit limit);

inline constexpr size_t kMaxChunkLineBytes = 4096;

// For a body read: what the parser holds back when it needs more (`pending`:
// a chunk-size line, or the last chunk and the trailer section) must stay
// within kMaxChunkLineBytes and `trailer_limit`; else the error to stop with.
// Data bytes never wait there (an eager parser takes them as they come), so
// this bounds the memory a chunked body can pin, however it is shaped: an
// accepted `pending` is at most kMaxChunkLineBytes + trailer_limit + 4 bytes.
boost::system::error_code PendingBodyError(std::string_view pending, size_t trailer_limit);

// The part of the request being read when the error came.
enum class RequestPart { kHeader, kBody };

struct RequestError {
  int status;          // 400, 405, 408, 413, 421, 431 or 501
  Rejection reason;
  std::string message;  // for the log and the JSON body
};

// The answer to an error reading a request (the watchdog's cut shows as
// beast::error::timeout): 408 when it was not complete in time, 431 for a
// header over --max-header-bytes, 413 for a body over --max-body-bytes, 400
// for a malformed one (kSmuggling for conflicting framing in the header).
// None when the client went away (EOF, reset, a cancelled read): nobody is
// left to answer.
std::optional<RequestError> ClassifyRequestError(boost::system::error_code ec, RequestPart part);

// The answer to a request CheckRequestFraming refused: kFraming is a 400
// counted as kSmuggling, kUnknownCoding a 501 (kUnsupportedCoding),
// kBadRequest a 400 and kConnect a 405 (both kBadRequest), kTooManyFields a
// 431 and kMisdirected a 421. `check` must not be ok().
RequestError RefusedRequest(const RequestCheck& check);

}  // namespace webtier::balancer
