// Unit tests of the request framing checks and header rewriting, plus the state file.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include <boost/beast/http.hpp>

#include "webtier/balancer/http/http_rules.h"
#include "webtier/balancer/membership/state_file.h"
#include "webtier/common/http_syntax.h"
#include "webtier/testing/harness.h"

namespace webtier::balancer {
namespace {

namespace http = boost::beast::http;

// Parses a request as the proxy does; returns the Beast error (if any) and
// the framing verdict.
std::string Verdict(const std::string& raw) {
  http::request_parser<http::string_body> p;
  boost::beast::error_code ec;
  p.eager(true);
  p.put(boost::asio::buffer(raw), ec);
  if (ec && ec != http::error::need_more) return "beast:" + ec.message();
  return std::string(CheckRequestFraming(p.get()).why);
}

TEST(CheckRequestFraming, AcceptsOrdinaryRequests) {
  EXPECT_EQ(Verdict("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), "");
  EXPECT_EQ(Verdict("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"), "");
  EXPECT_EQ(Verdict("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"), "");
  EXPECT_EQ(Verdict("GET / HTTP/1.0\r\n\r\n"), "");
}

TEST(CheckRequestFraming, RejectsSmugglingShapes) {
  EXPECT_NE(Verdict("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"), "");
  EXPECT_NE(Verdict("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc"), "");
  EXPECT_NE(Verdict("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc"), "");
  EXPECT_NE(Verdict("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"), "");
  EXPECT_NE(Verdict("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"), "");
  EXPECT_NE(Verdict("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\nContent-Length: 3\r\n\r\nabc"), "");
  EXPECT_NE(Verdict("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"), "");
  EXPECT_NE(Verdict("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), "");
  EXPECT_NE(Verdict("GET / HTTP/1.1\r\n\r\n"), "");
  EXPECT_NE(Verdict("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), "");
}

// The fault CheckRequestFraming finds in a raw head (kNone when fine).
RequestFault Fault(const std::string& raw) {
  http::request_parser<http::string_body> p;
  boost::beast::error_code ec;
  p.put(boost::asio::buffer(raw), ec);
  EXPECT_TRUE(p.is_header_done()) << ec.message() << " in:\n" << raw;
  return CheckRequestFraming(p.get()).fault;
}

http::request_header<> ParseHead(const std::string& raw) {
  http::request_parser<http::string_body> p;
  p.header_limit(1 << 20);
  boost::beast::error_code ec;
  p.put(boost::asio::buffer(raw), ec);
  EXPECT_TRUE(p.is_header_done()) << ec.message();
  return p.release().base();
}

std::string WithTe(const std::string& te) {
  return "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: " + te + "\r\n\r\n";
}

TEST(CheckRequestFraming, TransferEncodingMustBeExactlyChunked) {
  EXPECT_EQ(Fault(WithTe("chunked")), RequestFault::kNone);
  EXPECT_EQ(Fault(WithTe("CHUNKED")), RequestFault::kNone);
  EXPECT_EQ(Fault(WithTe("chunked ")), RequestFault::kNone);
  for (const char* framing : {"chunked, chunked", "identity, chunked, chunked", "gzip, chunked", "chunked, gzip",
                              "identity", "gzip", "chunked;q=1", "chunked=1", "chunked ;", ", chunked", "chunked,",
                              "chunked,,", "x-gzip, deflate, compress, chunked", "\"chunked\""}) {
    EXPECT_EQ(Fault(WithTe(framing)), RequestFault::kFraming) << framing;
  }
  // All field lines count as one list.
  EXPECT_TRUE(Verdict("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n")
                  .starts_with("beast:"));  // Beast refuses a second line after chunked itself
  EXPECT_EQ(Fault("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"),
            RequestFault::kFraming);
  // A coding nobody here knows: not implemented, wherever it stands.
  for (const char* framing : {"br, chunked", "foo", "chunked, foo", "foo;x=1, chunked", "gzip, zstd, chunked"}) {
    EXPECT_EQ(Fault(WithTe(framing)), RequestFault::kUnknownCoding) << framing;
  }
  EXPECT_EQ(Fault("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: br\r\nTransfer-Encoding: chunked\r\n\r\n"),
            RequestFault::kUnknownCoding);
  // HTTP/1.0 with any Transfer-Encoding stays a framing refusal.
  EXPECT_EQ(Fault("POST / HTTP/1.0\r\nTransfer-Encoding: foo\r\n\r\n"), RequestFault::kFraming);
}

TEST(CheckRequestFraming, RequestTargetForms) {
  EXPECT_EQ(Fault("GET /a?b HTTP/1.1\r\nHost: a\r\n\r\n"), RequestFault::kNone);
  EXPECT_EQ(Fault("GET http://example.com/a?b HTTP/1.1\r\nHost: a\r\n\r\n"), RequestFault::kNone);
  EXPECT_EQ(Fault("GET HTTPS://example.com:8443 HTTP/1.1\r\nHost: a\r\n\r\n"), RequestFault::kNone);
  EXPECT_EQ(Fault("GET http://[::1]:80?q HTTP/1.0\r\n\r\n"), RequestFault::kNone);
  EXPECT_EQ(Fault("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), RequestFault::kNone);
  EXPECT_EQ(Fault("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), RequestFault::kBadRequest);
  EXPECT_EQ(Fault("GET example.com:80 HTTP/1.1\r\nHost: a\r\n\r\n"), RequestFault::kBadRequest);
  EXPECT_EQ(Fault("GET ftp://example.com/a HTTP/1.1\r\nHost: a\r\n\r\n"), RequestFault::kBadRequest);
  EXPECT_EQ(Fault("GET http:///a HTTP/1.1\r\nHost: a\r\n\r\n"), RequestFault::kBadRequest);
  EXPECT_EQ(Fault("GET http://user@example.com/a HTTP/1.1\r\nHost: a\r\n\r\n"), RequestFault::kBadRequest);
  EXPECT_EQ(Fault("GET http://example.com/a#f HTTP/1.1\r\nHost: a\r\n\r\n"), RequestFault::kBadRequest);
  EXPECT_EQ(Fault("GET a HTTP/1.1\r\nHost: a\r\n\r\n"), RequestFault::kBadRequest);
  EXPECT_EQ(Fault("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"), RequestFault::kConnect);
  EXPECT_EQ(Fault("CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n"), RequestFault::kConnect);
  // Framing and Host come first.
  EXPECT_EQ(Fault("CONNECT a:1 HTTP/1.1\r\n\r\n"), RequestFault::kBadRequest);
  EXPECT_EQ(Fault("GET * HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"),
            RequestFault::kFraming);
}

http::request<http::string_body> Parsed(const std::string& raw) {
  http::request_parser<http::string_body> p;
  boost::beast::error_code ec;
  p.put(boost::asio::buffer(raw), ec);
  EXPECT_TRUE(p.is_header_done()) << ec.message();
  return p.release();
}

TEST(ToOriginForm, RewritesAbsoluteFormAndSetsHostFromIt) {
  auto req = Parsed("GET http://example.com:8080/a?b HTTP/1.1\r\nHost: other\r\nX-A: 1\r\n\r\n");
  ToOriginForm(req);
  EXPECT_EQ(req.target(), "/a?b");
  EXPECT_EQ(req.count(http::field::host), 1u);
  EXPECT_EQ(req[http::field::host], "example.com:8080");
  EXPECT_EQ(req["X-A"], "1");
  EXPECT_EQ(CheckRequestFraming(req).why, "");

  req = Parsed("GET http://example.com?q=1 HTTP/1.0\r\n\r\n");
  ToOriginForm(req);
  EXPECT_EQ(req.target(), "/?q=1");
  EXPECT_EQ(req[http::field::host], "example.com");
  req = Parsed("GET https://example.com HTTP/1.1\r\nHost: x\r\n\r\n");
  ToOriginForm(req);
  EXPECT_EQ(req.target(), "/");
  req = Parsed("OPTIONS http://example.com HTTP/1.1\r\nHost: x\r\n\r\n");
  ToOriginForm(req);
  EXPECT_EQ(req.target(), "*");

  req = Parsed("GET /plain HTTP/1.1\r\nHost: x\r\n\r\n");
  ToOriginForm(req);
  EXPECT_EQ(req.target(), "/plain");
  EXPECT_EQ(req[http::field::host], "x");
}

TEST(HeaderFields, DropsEveryTrailerFieldEvenBesideHeaderFieldsOfTheSameName) {
  http::request_parser<http::string_body> p;
  boost::beast::error_code ec;
  const std::string head =
      "POST / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1\r\nTransfer-Encoding: chunked\r\nX-Last: 1\r\n\r\n";
  p.put(boost::asio::buffer(head), ec);
  ASSERT_TRUE(p.is_header_done()) << ec.message();
  HeaderFields fields;
  fields.Snapshot(p.get());
  p.eager(true);
  const std::string body =
      "3\r\nabc\r\n0\r\nX-Forwarded-For: 6.6.6.6\r\nHost: evil\r\nAuthorization: x\r\nX-Trailer: t\r\n\r\n";
  p.put(boost::asio::buffer(body), ec);
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_TRUE(p.is_done());
  EXPECT_EQ(p.get().count("X-Forwarded-For"), 2u);  // Beast keeps trailers with the fields
  fields.DropTrailers(p.get());
  EXPECT_EQ(p.get().count("X-Forwarded-For"), 1u);
  EXPECT_EQ(p.get()["X-Forwarded-For"], "10.0.0.1");
  EXPECT_EQ(p.get().count(http::field::host), 1u);
  EXPECT_EQ(p.get()[http::field::host], "a");
  EXPECT_EQ(p.get().count(http::field::authorization), 0u);
  EXPECT_EQ(p.get().count("X-Trailer"), 0u);
  EXPECT_EQ(p.get()["X-Last"], "1");
  EXPECT_EQ(p.get()[http::field::transfer_encoding], "chunked");
  EXPECT_EQ(p.get().body(), "abc");
}

// A member's trailer section goes on without the fields a trailer must not
// carry; a field of the same name as a header field is still the trailer's.
TEST(ForwardedTrailers, PassesEndToEndFieldsAndDropsTheRest) {
  http::response_parser<http::string_body> p;
  p.eager(true);
  boost::beast::error_code ec;
  const std::string head =
      "HTTP/1.1 200 OK\r\nX-Checksum: from-head\r\nTransfer-Encoding: chunked\r\nConnection: X-Hop\r\n\r\n";
  p.put(boost::asio::buffer(head), ec);
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_TRUE(p.is_header_done());
  HeaderFields header;
  header.Snapshot(p.get());
  EXPECT_EQ(header.size(), 3u);
  std::vector<TrailerField> trailers;
  ForwardedTrailers(p.get(), header, trailers);
  EXPECT_TRUE(trailers.empty());
  const std::string body =
      "3\r\nabc\r\n0\r\nGrpc-Status: 0\r\nX-Checksum: sha256=1\r\nSet-Cookie: s=1\r\nCache-Control: max-age=9\r\n"
      "Host: evil\r\nX-Hop: 1\r\nTE: trailers\r\nContent-Type: text/evil\r\nCache-Status: fake; hit\r\n"
      "X-Request-Id: forged\r\nAge: 5\r\nProxy-Status: x\r\nGrpc-Message: ok\r\n\r\n";
  p.put(boost::asio::buffer(body), ec);
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_TRUE(p.is_done());
  ForwardedTrailers(p.get(), header, trailers);
  // In the parser's order (Beast keeps fields of one name together); the
  // header's X-Checksum is not among them.
  const std::vector<TrailerField> want = {
      {"X-Checksum", "sha256=1"}, {"Grpc-Status", "0"}, {"Grpc-Message", "ok"}};
  EXPECT_EQ(trailers, want);
  EXPECT_EQ(FieldCount(p.get()), 3u + 13u);
  std::string out = "x";
  AppendLastChunk(trailers, out);
  EXPECT_EQ(out, "x0\r\nX-Checksum: sha256=1\r\nGrpc-Status: 0\r\nGrpc-Message: ok\r\n\r\n");
  out.clear();
  AppendLastChunk({}, out);
  EXPECT_EQ(out, "0\r\n\r\n");
}

// Parses a serialized head back, as the member or the client would.
template <bool isRequest>
http::message<isRequest, http::string_body> Reparse(const std::string& head, const std::string& body = "") {
  http::parser<isRequest, http::string_body> p;
  if constexpr (!isRequest) p.skip(body.empty());
  p.eager(true);
  boost::beast::error_code ec;
  const std::string raw = head + body;
  const size_t used = p.put(boost::asio::buffer(raw), ec);
  EXPECT_FALSE(ec) << ec.message() << " in:\n" << raw;
  EXPECT_EQ(used, raw.size()) << raw;
  EXPECT_TRUE(p.is_done()) << raw;
  return p.release();
}

// `req` as the balancer sends it to a member (from 127.0.0.1, request id
// "id"), parsed back.
http::request<http::string_body> AsTheMemberReadsIt(const http::request<http::string_body>& req) {
  std::string out;
  SerializeUpstreamRequest(req, "127.0.0.1", "id", out);
  return Reparse<true>(out);
}

void AddConnectionScopedFields(http::fields& f) {
  f.insert(http::field::connection, "keep-alive, X-Secret, Content-Length");
  f.insert("X-Secret", "1");
  f.insert(http::field::keep_alive, "timeout=5");
  f.insert("Proxy-Authorization", "Basic x");
  f.insert("Proxy-Connection", "keep-alive");
  f.insert(http::field::te, "trailers");
  f.insert(http::field::trailer, "X");
  f.insert(http::field::upgrade, "websocket");
  f.insert("X-Kept", "yes");
}

void ExpectNoConnectionScopedFields(const http::fields& f) {
  EXPECT_EQ(f.count("X-Secret"), 0u);
  EXPECT_EQ(f.count(http::field::keep_alive), 0u);
  EXPECT_EQ(f.count("Proxy-Authorization"), 0u);
  EXPECT_EQ(f.count("Proxy-Connection"), 0u);
  EXPECT_EQ(f.count(http::field::te), 0u);
  EXPECT_EQ(f.count(http::field::trailer), 0u);
  EXPECT_EQ(f.count(http::field::upgrade), 0u);
  EXPECT_EQ(f["X-Kept"], "yes");
}

TEST(SerializeResponseHead, DropsHopByHopFieldsButNeverTheFraming) {
  http::response_header<> res;
  res.result(200);
  res.version(11);
  AddConnectionScopedFields(res);
  res.insert(http::field::content_length, "3");
  std::string out;
  SerializeResponseHead(res, 11, /*keep_alive=*/true, BodyFraming::kAsIs, "rid", out);
  auto back = Reparse<false>(out, "abc");
  ExpectNoConnectionScopedFields(back);
  EXPECT_EQ(back.count(http::field::connection), 0u);  // HTTP/1.1 persists by default
  EXPECT_EQ(back[http::field::content_length], "3");   // Connection cannot name the framing away
  EXPECT_EQ(back.body(), "abc");
  EXPECT_EQ(back["X-Request-Id"], "rid");
  EXPECT_EQ(back.result_int(), 200u);
  EXPECT_EQ(back.reason(), "OK");
}

TEST(SerializeResponseHead, ConnectionFollowsTheClientsVersion) {
  http::response_header<> res;
  res.result(404);
  res.reason("Nope");
  res.insert(http::field::content_length, "0");
  res.insert("X-Request-Id", "from-member");
  std::string out;
  SerializeResponseHead(res, 11, /*keep_alive=*/false, BodyFraming::kAsIs, "ignored", out);
  auto a = Reparse<false>(out);
  EXPECT_EQ(a[http::field::connection], "close");
  EXPECT_EQ(a.reason(), "Nope");
  EXPECT_EQ(a.count("X-Request-Id"), 1u);
  EXPECT_EQ(a["X-Request-Id"], "from-member");
  EXPECT_TRUE(out.starts_with("HTTP/1.1 404 Nope\r\n")) << out;

  SerializeResponseHead(res, 10, /*keep_alive=*/true, BodyFraming::kAsIs, "", out);
  EXPECT_TRUE(out.starts_with("HTTP/1.0 404 Nope\r\n")) << out;
  EXPECT_EQ(Reparse<false>(out)[http::field::connection], "keep-alive");
  SerializeResponseHead(res, 10, /*keep_alive=*/false, BodyFraming::kAsIs, "", out);
  EXPECT_EQ(Reparse<false>(out).count(http::field::connection), 0u);  // HTTP/1.0 closes by default
}

TEST(SerializeResponseHead, ReframesBodiesThatAreNotSized) {
  http::response_header<> res;
  res.result(200);
  res.insert(http::field::transfer_encoding, "chunked");
  std::string out;
  SerializeResponseHead(res, 11, true, BodyFraming::kChunked, "", out);
  auto chunked = Reparse<false>(out, "3\r\nabc\r\n0\r\n\r\n");
  EXPECT_EQ(chunked[http::field::transfer_encoding], "chunked");
  EXPECT_EQ(chunked.count(http::field::transfer_encoding), 1u);
  EXPECT_EQ(chunked.body(), "abc");

  SerializeResponseHead(res, 10, false, BodyFraming::kCloseDelimited, "", out);
  EXPECT_EQ(out.find("Transfer-Encoding"), std::string::npos) << out;
  EXPECT_EQ(out.find("Content-Length"), std::string::npos) << out;
}

TEST(SerializeUpstreamRequest, ForwardingHeaders) {
  http::request<http::string_body> req{http::verb::post, "/x?a=1", 11};
  req.insert(http::field::host, "h");
  req.insert(http::field::transfer_encoding, "chunked");
  req.insert(http::field::expect, "100-continue");
  req.insert("X-Forwarded-For", "10.0.0.1");
  req.insert("X-Forwarded-For", "10.0.0.2");
  req.insert("X-Forwarded-Proto", "https");  // a client's claim is replaced
  AddConnectionScopedFields(req);
  req.body() = "hello";
  std::string out;
  EXPECT_EQ(SerializeUpstreamRequest(req, "127.0.0.1", "abc", out), "abc");
  auto back = Reparse<true>(out, req.body());
  EXPECT_EQ(back.method(), http::verb::post);
  EXPECT_EQ(back.target(), "/x?a=1");
  EXPECT_EQ(back.version(), 11u);
  EXPECT_EQ(back["X-Forwarded-For"], "10.0.0.1, 10.0.0.2, 127.0.0.1");
  EXPECT_EQ(back.count("X-Forwarded-For"), 1u);
  EXPECT_EQ(back["X-Forwarded-Proto"], "http");
  EXPECT_EQ(back.count("X-Forwarded-Proto"), 1u);
  EXPECT_EQ(back["X-Request-Id"], "abc");
  EXPECT_EQ(back.count(http::field::transfer_encoding), 0u);
  EXPECT_EQ(back.count(http::field::expect), 0u);
  EXPECT_EQ(back.count(http::field::connection), 0u);
  EXPECT_EQ(back[http::field::content_length], "5");
  EXPECT_EQ(back[http::field::host], "h");
  EXPECT_EQ(back.body(), "hello");
  ExpectNoConnectionScopedFields(back);

  // Over TLS the member is told https, whatever the client claimed.
  req.set("X-Forwarded-Proto", "http");
  SerializeUpstreamRequest(req, "127.0.0.1", "abc", out, {}, /*tls=*/true);
  auto secure = Reparse<true>(out, req.body());
  EXPECT_EQ(secure["X-Forwarded-Proto"], "https");
  EXPECT_EQ(secure.count("X-Forwarded-Proto"), 1u);
}

TEST(SerializeUpstreamRequest, KeepsOneRequestIdAndAddsNoEmptyBody) {
  http::request<http::string_body> keep{http::verb::get, "/", 10};
  keep.insert("X-Request-Id", "");
  keep.insert("X-Request-Id", "given");
  keep.insert("X-Request-Id", "second");
  std::string out;
  EXPECT_EQ(SerializeUpstreamRequest(keep, "::1", "new", out), "given");
  auto back = Reparse<true>(out);
  EXPECT_EQ(back.count("X-Request-Id"), 1u);
  EXPECT_EQ(back["X-Request-Id"], "given");
  EXPECT_EQ(back["X-Forwarded-For"], "::1");
  EXPECT_EQ(back.count(http::field::content_length), 0u);
  EXPECT_EQ(back.version(), 11u);
  // HTTP/1.0 without Host goes on as HTTP/1.1, which needs one: with no
  // authority given it is sent empty.
  EXPECT_EQ(back.count(http::field::host), 1u);
  EXPECT_EQ(back[http::field::host], "");
  EXPECT_EQ(CheckRequestFraming(back).why, "");
  // With the authority the target URI was reconstructed with, that one.
  SerializeUpstreamRequest(keep, "::1", "new", out, {}, false, "[::1]:8080");
  back = Reparse<true>(out);
  EXPECT_EQ(back.count(http::field::host), 1u);
  EXPECT_EQ(back[http::field::host], "[::1]:8080");
  // A client's Host is kept, whatever the authority.
  keep.set(http::field::host, "h");
  SerializeUpstreamRequest(keep, "::1", "new", out, {}, false, "[::1]:8080");
  back = Reparse<true>(out);
  EXPECT_EQ(back.count(http::field::host), 1u);
  EXPECT_EQ(back[http::field::host], "h");
}

TEST(SerializeUpstreamRequest, StreamedBodyKeepsItsLengthOrGoesChunked) {
  http::request<http::string_body> req{http::verb::put, "/up", 11};
  req.insert(http::field::host, "h");
  req.insert(http::field::content_length, "100000");
  req.body() = std::string(70000, 'a');  // what has arrived so far
  std::string out;
  SerializeUpstreamRequest(req, "127.0.0.1", "id", out, UpstreamBody{true, 100000});
  auto back = Reparse<true>(out + std::string(100000, 'a'));
  EXPECT_EQ(back[http::field::content_length], "100000");  // the declared length, not the part in hand
  EXPECT_EQ(back.count(http::field::transfer_encoding), 0u);
  EXPECT_EQ(back.body().size(), 100000u);

  req.erase(http::field::content_length);
  req.insert(http::field::transfer_encoding, "chunked");
  SerializeUpstreamRequest(req, "127.0.0.1", "id", out, UpstreamBody{true, std::nullopt});
  back = Reparse<true>(out + "3\r\nabc\r\n0\r\n\r\n");
  EXPECT_EQ(back[http::field::transfer_encoding], "chunked");
  EXPECT_EQ(back.count(http::field::content_length), 0u);
  EXPECT_EQ(back.body(), "abc");
  EXPECT_EQ(CheckRequestFraming(back).why, "");
}

TEST(SerializeUpstreamRequest, AnUpgradeRequestKeepsConnectionUpgradeAndUpgrade) {
  http::request<http::string_body> req{http::verb::get, "/ws", 11};
  req.insert(http::field::host, "h");
  req.insert(http::field::connection, "keep-alive, Upgrade");
  req.insert(http::field::upgrade, "websocket");
  req.insert("Sec-WebSocket-Key", "k");
  ASSERT_TRUE(IsUpgradeRequest(req));
  auto back = AsTheMemberReadsIt(req);
  EXPECT_EQ(back[http::field::connection], "upgrade");
  EXPECT_EQ(back.count(http::field::connection), 1u);
  EXPECT_EQ(back[http::field::upgrade], "websocket");
  EXPECT_EQ(back.count(http::field::upgrade), 1u);
  EXPECT_EQ(back["Sec-WebSocket-Key"], "k");

  // Not tunnelled, so both stay hop-by-hop: no Connection token, a body, HTTP/1.0, not GET.
  auto dropped = [](http::request<http::string_body> r) {
    EXPECT_FALSE(IsUpgradeRequest(r));
    std::string o;
    SerializeUpstreamRequest(r, "127.0.0.1", "id", o);
    auto b = Reparse<true>(o, r.body());
    EXPECT_EQ(b.count(http::field::upgrade), 0u) << o;
    EXPECT_EQ(b.count(http::field::connection), 0u) << o;
  };
  auto r = req;
  r.set(http::field::connection, "keep-alive");
  dropped(r);
  r = req;
  r.body() = "x";
  r.set(http::field::content_length, "1");
  dropped(r);
  r = req;
  r.version(10);
  dropped(r);
  r = req;
  r.method(http::verb::post);
  dropped(r);
  // Only WebSocket is tunnelled: h2c would carry requests past every
  // per-request check, and other protocols are nothing the balancer knows.
  for (const char* protocol : {"h2c", "HTTP/2.0", "foo", "websocketx", "TLS/1.0"}) {
    r = req;
    r.set(http::field::upgrade, protocol);
    dropped(r);
  }
  // A list naming websocket among others: the member is offered websocket alone.
  r = req;
  r.set(http::field::upgrade, "h2c, WebSocket");
  ASSERT_TRUE(IsUpgradeRequest(r));
  back = AsTheMemberReadsIt(r);
  EXPECT_EQ(back[http::field::upgrade], "websocket");
}

TEST(SerializeUpstreamRequest, ForwardingFieldsAreTheBalancersOwn) {
  http::request<http::string_body> req{http::verb::get, "/p", 11};
  req.insert(http::field::host, "Shop.Example:8080");
  const char* forged[] = {"Forwarded", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port",
                          "X-Forwarded-Scheme", "X-Forwarded-Server", "X-Forwarded-Ssl", "X-Real-IP",
                          "X-Client-IP", "True-Client-IP", "X-Original-URL", "X-Rewrite-URL",
                          "X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override", "Front-End-Https",
                          "X-Url-Scheme"};
  for (const char* name : forged) req.insert(name, "evil.example");
  req.insert("X-Other", "kept");
  std::string out;
  SerializeUpstreamRequest(req, "10.1.1.1", "id", out);
  auto back = Reparse<true>(out);
  for (const char* name : forged) {
    if (std::string_view(name) == "X-Forwarded-Host" || std::string_view(name) == "X-Forwarded-Proto") continue;
    EXPECT_EQ(back.count(name), 0u) << name << " in\n" << out;
  }
  EXPECT_EQ(back.count("X-Forwarded-Host"), 1u) << out;
  EXPECT_EQ(back["X-Forwarded-Host"], "Shop.Example:8080");
  EXPECT_EQ(back.count("X-Forwarded-Proto"), 1u);
  EXPECT_EQ(back["X-Forwarded-Proto"], "http");
  EXPECT_EQ(back["X-Other"], "kept");
  EXPECT_EQ(back[http::field::host], "Shop.Example:8080");
  EXPECT_TRUE(IsClientForwardingField("x-forwarded-host"));
  EXPECT_FALSE(IsClientForwardingField("x-forwarded-for"));  // kept, appended to
  EXPECT_FALSE(IsClientForwardingField("x-request-id"));
  EXPECT_FALSE(IsClientForwardingField(""));
}

TEST(HostValidation, FollowsTheAuthorityGrammar) {
  for (const char* good : {"", "a", "example.com", "Example.COM:8080", "127.0.0.1", "127.0.0.1:80", "[::1]",
                           "[::1]:443", "[2001:db8::7]", "xn--bcher-kva.example", "a-b_c~d.e", "%41b", "host:",
                           "[v1.fe80::a+en1]", "a.b.c.d.e.f"}) {
    EXPECT_TRUE(IsValidHost(good)) << good;
  }
  for (const char* bad : {"a b", "evil.example/x@probe", "a@b", "a/b", "a?b", "a#b", "a\\b", "a:b:c", "a:123456",
                          "a:-1", "[::1", "::1", "[::1]x", "[::g]", "a\tb", "a\rb", "a\"b", "a<b", "%4", "%zz",
                          "[]", "a:8080:80", "a  b"}) {
    EXPECT_FALSE(IsValidHost(bad)) << bad;
  }
  // A Host that is not one is refused like a missing one (400), never forwarded.
  EXPECT_EQ(Fault("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), RequestFault::kBadRequest);
  EXPECT_EQ(Fault("GET / HTTP/1.1\r\nHost: evil.example/x@probe\r\n\r\n"), RequestFault::kBadRequest);
  EXPECT_EQ(Fault("GET / HTTP/1.1\r\nHost: good.example\r\n\r\n"), RequestFault::kNone);
  // An absolute-form target's authority becomes the Host: the same rule.
  EXPECT_EQ(Fault("GET http://exa-.com:ple.co../a HTTP/1.1\r\nHost: er\r\n\r\n"), RequestFault::kBadRequest);
  EXPECT_EQ(Fault("GET http://a:1:2/a HTTP/1.1\r\nHost: er\r\n\r\n"), RequestFault::kBadRequest);
  EXPECT_EQ(Fault("GET http://good.example:8080/a HTTP/1.1\r\nHost: er\r\n\r\n"), RequestFault::kNone);
}

TEST(HostValidation, NormalisesCaseDefaultPortAndTrailingDot) {
  EXPECT_EQ(NormalizeHost("Example.COM", false), "example.com");
  EXPECT_EQ(NormalizeHost("example.com:80", false), "example.com");
  EXPECT_EQ(NormalizeHost("example.com:080", false), "example.com");
  EXPECT_EQ(NormalizeHost("example.com:443", false), "example.com:443");
  EXPECT_EQ(NormalizeHost("example.com:443", true), "example.com");
  EXPECT_EQ(NormalizeHost("example.com:80", true), "example.com:80");
  EXPECT_EQ(NormalizeHost("example.com.", false), "example.com");
  EXPECT_EQ(NormalizeHost("example.com:", false), "example.com");
  EXPECT_EQ(NormalizeHost("[::1]:80", false), "[::1]");
  EXPECT_EQ(NormalizeHost("[::1]:8080", false), "[::1]:8080");
}

TEST(HostAllowList, AdmitsListedNamesAndSubdomainsOnly) {
  const HostAllowList any;
  EXPECT_TRUE(any.Admits("whatever", false));
  const HostAllowList list({"shop.example", "*.cdn.example", "api.example:8443"});
  EXPECT_TRUE(list.Admits("shop.example", false));
  EXPECT_TRUE(list.Admits("SHOP.example:80", false));
  EXPECT_TRUE(list.Admits("shop.example:443", true));
  EXPECT_TRUE(list.Admits("shop.example.", false));
  EXPECT_FALSE(list.Admits("shop.example:8080", false));
  EXPECT_FALSE(list.Admits("evil.example", false));
  EXPECT_FALSE(list.Admits("shop.example.evil", false));
  EXPECT_FALSE(list.Admits("xshop.example", false));
  EXPECT_TRUE(list.Admits("a.cdn.example", false));
  EXPECT_TRUE(list.Admits("a.b.cdn.example", true));
  EXPECT_FALSE(list.Admits("cdn.example", false));
  EXPECT_FALSE(list.Admits("acdn.example", false));
  EXPECT_TRUE(list.Admits("api.example:8443", false));
  EXPECT_FALSE(list.Admits("api.example", false));
  EXPECT_FALSE(list.Admits("", false));
}

TEST(CheckRequestFraming, CountsFieldLinesAgainstTheLimit) {
  std::string raw = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 99; ++i) raw += "b: x\r\n";
  EXPECT_EQ(CheckRequestFraming(ParseHead(raw + "\r\n"), 100).fault, RequestFault::kNone);
  EXPECT_EQ(CheckRequestFraming(ParseHead(raw + "c: y\r\n\r\n"), 100).fault, RequestFault::kTooManyFields);
  EXPECT_EQ(CheckRequestFraming(ParseHead(raw + "c: y\r\n\r\n"), 0).fault, RequestFault::kNone);  // 0: no limit
}

// Thousands of Connection tokens beside many fields: every field named is
// dropped, every other kept, and the framing fields whatever is named.
TEST(HopByHop, ManyConnectionTokensDropExactlyTheNamedFields) {
  http::request<http::string_body> req{http::verb::get, "/", 11};
  req.insert(http::field::host, "h");
  std::string tokens = "keep-alive";
  for (int i = 0; i < 4000; ++i) tokens += ", t" + std::to_string(i);
  tokens += ", Host, Content-Length, X-Named";
  req.insert(http::field::connection, tokens);
  req.insert(http::field::connection, "x-second-line");
  for (int i = 0; i < 90; ++i) req.insert("b" + std::to_string(i), "x");
  req.insert("T17", "dropped");
  req.insert("x-named", "dropped");
  req.insert("X-Second-Line", "dropped");
  req.insert("X-Kept", "kept");
  auto back = AsTheMemberReadsIt(req);
  EXPECT_EQ(back.count("T17"), 0u);
  EXPECT_EQ(back.count("X-Named"), 0u);
  EXPECT_EQ(back.count("X-Second-Line"), 0u);
  EXPECT_EQ(back["X-Kept"], "kept");
  EXPECT_EQ(back["b89"], "x");
  EXPECT_EQ(back[http::field::host], "h");
}

// The balancer's fast switch over field codes drops exactly the list both
// programs share; Transfer-Encoding is framing, which it writes itself.
TEST(HopByHop, DropsEveryFieldOfTheSharedList) {
  for (std::string_view name : http_syntax::kHopByHopFields) {
    http::request<http::string_body> req{http::verb::get, "/", 11};
    req.insert(http::field::host, "h");
    req.insert(std::string(name), "from-client");
    auto back = AsTheMemberReadsIt(req);
    EXPECT_NE(back[std::string(name)], "from-client") << name;
  }
}

// RFC 9110 5.3: field lines of one name form one list wherever they are in
// the section; a Connection line after other fields names fields as well.
TEST(HopByHop, ConnectionLinesApartFromEachOtherAllCount) {
  http::request<http::string_body> req{http::verb::get, "/", 11};
  req.insert(http::field::connection, "x-first");
  req.insert(http::field::host, "h");
  req.insert("X-First", "dropped");
  req.insert(http::field::connection, "x-second");
  req.insert("X-Second", "dropped");
  req.insert("X-Kept", "kept");
  auto back = AsTheMemberReadsIt(req);
  EXPECT_EQ(back.count("X-First"), 0u);
  EXPECT_EQ(back.count("X-Second"), 0u);
  EXPECT_EQ(back["X-Kept"], "kept");
}

// The usual values (keep-alive, close, upgrade) take no table; a field that
// happens to be called like one of them is still dropped when named.
TEST(HopByHop, UsualConnectionValuesDropOnlyWhatTheyName) {
  auto sent = [](const std::string& connection, const std::string& field) {
    http::request<http::string_body> req{http::verb::get, "/", 11};
    req.insert(http::field::host, "h");
    req.insert(http::field::connection, connection);
    req.insert(field, "v");
    req.insert("X-Kept", "k");
    auto back = AsTheMemberReadsIt(req);
    EXPECT_EQ(back["X-Kept"], "k") << connection;
    return back.count(field) == 1;
  };
  EXPECT_TRUE(sent("keep-alive", "X-Field"));
  EXPECT_TRUE(sent("close", "X-Field"));
  EXPECT_FALSE(sent("close", "Close"));
  EXPECT_FALSE(sent("keep-alive, x-field", "X-Field"));
  EXPECT_FALSE(sent("Keep-Alive", "Keep-Alive"));
  EXPECT_TRUE(sent(", ,", "X-Field"));
}

TEST(CheckResponseFraming, RelaysCodingsBeforeChunkedAndRefusesTheRest) {
  auto framing = [](const std::string& fields) {
    http::response_parser<http::empty_body> p;
    p.skip(true);
    boost::beast::error_code ec;
    const std::string raw = "HTTP/1.1 200 OK\r\n" + fields + "\r\n";
    p.put(boost::asio::buffer(raw), ec);
    EXPECT_TRUE(p.is_header_done()) << ec.message() << raw;
    return CheckResponseFraming(p.get());
  };
  EXPECT_TRUE(framing("Content-Length: 3\r\n").ok());
  EXPECT_TRUE(framing("Transfer-Encoding: chunked\r\n").ok());
  EXPECT_EQ(framing("Transfer-Encoding: chunked\r\n").codings, "");
  EXPECT_EQ(framing("Transfer-Encoding: gzip, chunked\r\n").codings, "gzip");
  EXPECT_EQ(framing("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n").codings, "gzip");
  EXPECT_EQ(framing("Transfer-Encoding: gzip,deflate , chunked\r\n").codings, "gzip, deflate");
  EXPECT_FALSE(framing("Transfer-Encoding: gzip\r\n").ok());
  EXPECT_FALSE(framing("Transfer-Encoding: chunked, gzip\r\n").ok());
  EXPECT_FALSE(framing("Transfer-Encoding: chunked;x=1\r\n").ok());
  EXPECT_FALSE(framing("Transfer-Encoding: , chunked\r\n").ok());
  // (Transfer-Encoding with Content-Length: Beast's parser refuses the head
  // itself, and the exchange answers 502 for a malformed member head.)

  http::response<http::string_body> res{http::status::ok, 11};
  res.insert(http::field::transfer_encoding, "gzip, chunked");
  std::string out;
  SerializeResponseHead(res, 11, true, BodyFraming::kChunked, "", out, "gzip");
  EXPECT_NE(out.find("\r\nTransfer-Encoding: gzip, chunked\r\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("Transfer-Encoding", out.find("Transfer-Encoding") + 1), std::string::npos) << out;
}

TEST(SerializeInterimHead, KeepsEndToEndFieldsOnly) {
  http::response<http::empty_body> res{static_cast<http::status>(103), 11};
  res.reason("Early Hints");
  res.insert(http::field::link, "</style.css>; rel=preload; as=style");
  res.insert(http::field::connection, "X-Secret");
  res.insert("X-Secret", "s");
  std::string out;
  SerializeInterimHead(res, out);
  EXPECT_EQ(out, "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n");
}

TEST(SerializeResponseHead, A101KeepsItsUpgradeForTheClient) {
  http::response<http::string_body> res{http::status::switching_protocols, 11};
  res.insert(http::field::connection, "Upgrade");
  res.insert(http::field::upgrade, "websocket");
  res.insert("Sec-WebSocket-Accept", "a");
  std::string out;
  SerializeResponseHead(res, 11, /*keep_alive=*/false, BodyFraming::kAsIs, "rid", out);
  EXPECT_TRUE(out.starts_with("HTTP/1.1 101 ")) << out;
  EXPECT_NE(out.find("\r\nConnection: upgrade\r\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\r\nUpgrade: websocket\r\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\r\nSec-WebSocket-Accept: a\r\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("close"), std::string::npos) << out;
}

TEST(IsIdempotent, FollowsRfc9110) {
  EXPECT_TRUE(IsIdempotent(http::verb::get));
  EXPECT_TRUE(IsIdempotent(http::verb::put));
  EXPECT_TRUE(IsIdempotent(http::verb::delete_));
  EXPECT_FALSE(IsIdempotent(http::verb::post));
  EXPECT_FALSE(IsIdempotent(http::verb::patch));
}

TEST(WriteRequestId, IsHexAndUnique) {
  char ida[kRequestIdLength], idb[kRequestIdLength];
  WriteRequestId(ida);
  WriteRequestId(idb);
  const std::string a(ida, sizeof ida), b(idb, sizeof idb);
  EXPECT_EQ(a.size(), 32u);
  EXPECT_NE(a, b);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
}

TEST(StateFile, RoundTripsAndSkipsInvalidEntries) {
  testing::TempDir dir("balancer-state");
  const std::string path = dir.path() + "/pool.json";
  std::vector<MemberRecord> in(2);
  in[0].key = "member_0000000001";
  in[0].member = {.id = "a", .host = "127.0.0.1", .port = 8081, .zone = "z", .weight = 50};
  in[1].key = "member_0000000002";
  in[1].member = {.id = "b", .host = "::1", .port = 8082};
  ASSERT_TRUE(SaveStateFile(path, in).ok());
  std::vector<MemberRecord> out;
  ASSERT_TRUE(LoadStateFile(path, &out).ok());
  EXPECT_EQ(out, in);

  int invalid = 0;
  ASSERT_TRUE(ParseState(R"({"members":[{"znode":"m1","member":{"serviceEndpoint":{"host":"h","port":1},"status":"ALIVE"}},
                           {"znode":"m2","member":{"serviceEndpoint":{"host":"h","port":70000},"status":"ALIVE"}},
                           {"member":{}}, 7]})",
                         &out, &invalid)
                  .ok());
  EXPECT_EQ(out.size(), 1u);
  EXPECT_EQ(invalid, 3);
  EXPECT_EQ(ParseState("not json", &out, nullptr).code(), ErrorCode::kCorrupt);

  // A link planted at the temporary name is not written through.
  const std::string victim = dir.path() + "/victim";
  { std::ofstream(victim) << "untouched"; }
  ASSERT_EQ(::symlink(victim.c_str(), (path + ".tmp." + std::to_string(::getpid())).c_str()), 0);
  ASSERT_TRUE(SaveStateFile(path, in).ok());
  std::ifstream v(victim);
  std::string text((std::istreambuf_iterator<char>(v)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "untouched");
  struct stat st{};
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 0007, 0u);  // not world-readable
  EXPECT_EQ(LoadStateFile(dir.path() + "/missing.json", &out).code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace webtier::balancer
