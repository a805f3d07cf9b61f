// What the proxy answers when a client's request cannot be read or must not
// be forwarded: the status, the `reason` label of
// balancer_rejected_requests_total and the error text. Pure; safe anywhere.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <boost/system/error_code.hpp>

#include "webtier/balancer/http/http_rules.h"
#include "webtier/balancer/telemetry/proxy_metrics.h"

namespace webtier::balancer {

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
