// The answers to unreadable requests (see request_errors.h).
#include "webtier/balancer/http/request_errors.h"

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>

namespace webtier::balancer {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {

// (stream_truncated: a TLS client closed its connection without close_notify.)
bool ClientWentAway(boost::system::error_code ec) {
  return ec == http::error::end_of_stream || ec == http::error::partial_message || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::operation_aborted ||
         ec == asio::ssl::error::stream_truncated;
}

// Framing the header declares in conflicting or invalid ways: the errors a
// request smuggling attempt produces. In a body (trailers) they are plain bad requests.
bool ConflictingFraming(boost::system::error_code ec) {
  return ec == http::error::bad_transfer_encoding || ec == http::error::bad_content_length ||
         ec == http::error::multiple_content_length;
}

}  // namespace

std::optional<RequestError> ClassifyRequestError(boost::system::error_code ec, RequestPart part) {
  const bool header = part == RequestPart::kHeader;
  if (ClientWentAway(ec)) return std::nullopt;
  if (ec == MakeErrorCode(BodyLimit::kChunkLineTooLong)) return RequestError{400, Rejection::kChunkLine, ec.message()};
  if (ec == MakeErrorCode(BodyLimit::kTrailerTooLarge)) return RequestError{400, Rejection::kTrailerTooLarge, ec.message()};
  if (ec == MakeErrorCode(BodyLimit::kBodyTimeout)) return RequestError{408, Rejection::kBodyTimeout, ec.message()};
  if (ec == beast::error::timeout) {
    return RequestError{408, Rejection::kHeaderTimeout,
                        header ? "request header not complete in time" : "request body not complete in time"};
  }
  if (ec == http::error::body_limit) return RequestError{413, Rejection::kBodyTooLarge, "request body too large"};
  if (header && ec == http::error::header_limit) {
    return RequestError{431, Rejection::kHeaderTooLarge, "request header too large"};
  }
  if (header && ConflictingFraming(ec)) return RequestError{400, Rejection::kSmuggling, ec.message()};
  return RequestError{400, Rejection::kBadRequest, ec.message()};
}

RequestError RefusedRequest(const RequestCheck& check) {
  const std::string why(check.why);
  switch (check.fault) {
    case RequestFault::kFraming: return RequestError{400, Rejection::kSmuggling, why};
    case RequestFault::kUnknownCoding: return RequestError{501, Rejection::kUnsupportedCoding, why};
    case RequestFault::kConnect: return RequestError{405, Rejection::kBadRequest, why};
    case RequestFault::kTooManyFields: return RequestError{431, Rejection::kTooManyFields, why};
    case RequestFault::kMisdirected: return RequestError{421, Rejection::kMisdirected, why};
    case RequestFault::kBadRequest:
    case RequestFault::kNone: break;
  }
  return RequestError{400, Rejection::kBadRequest, why};
}

}  // namespace webtier::balancer
