// What a client gets for a request that cannot be read: status, counted
// reason and text, by error and by the part being read.
#include "webtier/balancer/http/request_errors.h"

#include <gtest/gtest.h>

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>

namespace webtier::balancer {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;

TEST(RequestErrorsTest, AClientThatWentAwayGetsNoAnswer) {
  for (RequestPart part : {RequestPart::kHeader, RequestPart::kBody}) {
    for (error_code ec : {error_code(http::error::end_of_stream), error_code(http::error::partial_message),
                          error_code(asio::error::eof), error_code(asio::error::connection_reset),
                          error_code(asio::error::operation_aborted),
                          error_code(asio::ssl::error::stream_truncated)}) {  // TLS: closed without close_notify
      EXPECT_FALSE(ClassifyRequestError(ec, part).has_value()) << ec.message();
    }
  }
}

TEST(RequestErrorsTest, TooSlowIs408WithThePartInTheText) {
  auto header = ClassifyRequestError(beast::error::timeout, RequestPart::kHeader);
  ASSERT_TRUE(header);
  EXPECT_EQ(header->status, 408);
  EXPECT_EQ(header->reason, Rejection::kHeaderTimeout);
  EXPECT_EQ(header->message, "request header not complete in time");
  auto body = ClassifyRequestError(beast::error::timeout, RequestPart::kBody);
  ASSERT_TRUE(body);
  EXPECT_EQ(body->status, 408);
  EXPECT_EQ(body->reason, Rejection::kHeaderTimeout);
  EXPECT_EQ(body->message, "request body not complete in time");
}

TEST(RequestErrorsTest, TooLargeIs431ForTheHeaderAnd413ForTheBody) {
  auto header = ClassifyRequestError(http::error::header_limit, RequestPart::kHeader);
  ASSERT_TRUE(header);
  EXPECT_EQ(header->status, 431);
  EXPECT_EQ(header->reason, Rejection::kHeaderTooLarge);
  EXPECT_EQ(header->message, "request header too large");
  for (RequestPart part : {RequestPart::kHeader, RequestPart::kBody}) {
    auto body = ClassifyRequestError(http::error::body_limit, part);
    ASSERT_TRUE(body);
    EXPECT_EQ(body->status, 413);
    EXPECT_EQ(body->reason, Rejection::kBodyTooLarge);
    EXPECT_EQ(body->message, "request body too large");
  }
}

TEST(RequestErrorsTest, ConflictingFramingInTheHeaderIsSmuggling) {
  for (error_code ec : {error_code(http::error::bad_transfer_encoding), error_code(http::error::bad_content_length),
                        error_code(http::error::multiple_content_length)}) {
    auto header = ClassifyRequestError(ec, RequestPart::kHeader);
    ASSERT_TRUE(header);
    EXPECT_EQ(header->status, 400);
    EXPECT_EQ(header->reason, Rejection::kSmuggling);
    EXPECT_EQ(header->message, ec.message());
    // In a body (chunked trailers) the same errors are plain bad requests.
    auto body = ClassifyRequestError(ec, RequestPart::kBody);
    ASSERT_TRUE(body);
    EXPECT_EQ(body->reason, Rejection::kBadRequest);
  }
}

TEST(RequestErrorsTest, AnythingElseMalformedIsABadRequestWithTheParserMessage) {
  for (RequestPart part : {RequestPart::kHeader, RequestPart::kBody}) {
    auto e = ClassifyRequestError(http::error::bad_chunk, part);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->status, 400);
    EXPECT_EQ(e->reason, Rejection::kBadRequest);
    EXPECT_EQ(e->message, error_code(http::error::bad_chunk).message());
  }
  auto body_header_limit = ClassifyRequestError(http::error::header_limit, RequestPart::kBody);
  ASSERT_TRUE(body_header_limit);
  EXPECT_EQ(body_header_limit->status, 400);
}

TEST(RequestErrorsTest, FramingRefusalsAreSmugglingUnlessAboutHost) {
  const RequestError te = RefusedRequest({RequestFault::kFraming, "Content-Length with Transfer-Encoding"});
  EXPECT_EQ(te.status, 400);
  EXPECT_EQ(te.reason, Rejection::kSmuggling);
  EXPECT_EQ(te.message, "Content-Length with Transfer-Encoding");
  const RequestError host = RefusedRequest({RequestFault::kBadRequest, "missing Host"});
  EXPECT_EQ(host.status, 400);
  EXPECT_EQ(host.reason, Rejection::kBadRequest);
}

TEST(RequestErrorsTest, UnknownCodingIs501AndConnect405) {
  const RequestError coding = RefusedRequest({RequestFault::kUnknownCoding, "unsupported Transfer-Encoding"});
  EXPECT_EQ(coding.status, 501);
  EXPECT_EQ(coding.reason, Rejection::kUnsupportedCoding);
  EXPECT_STREQ(RejectionName(coding.reason), "unsupported_coding");
  const RequestError connect = RefusedRequest({RequestFault::kConnect, "CONNECT is not supported"});
  EXPECT_EQ(connect.status, 405);
  EXPECT_EQ(connect.reason, Rejection::kBadRequest);
}

}  // namespace
}  // namespace webtier::balancer
