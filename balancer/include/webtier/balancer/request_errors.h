// What the proxy answers when a client's request cannot be read or must not
// be forwarded: the status, the `reason` label of
// balancer_rejected_requests_total and the error text. Pure; safe anywhere.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <boost/system/error_code.hpp>

#include "webtier/balancer/proxy_metrics.h"

namespace webtier::balancer {

// The part of the request being read when the error came.
enum class RequestPart { kHeader, kBody };

struct RequestError {
  int status;          // 400, 408, 413 or 431
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

// The reason to count for a request CheckRequestFraming refused with `why`:
// a Host problem is a bad request, anything else smuggling.
Rejection FramingRejection(std::string_view why);

}  // namespace webtier::balancer
