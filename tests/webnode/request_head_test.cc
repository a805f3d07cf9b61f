// HeadScanner: the request head read once, fields counted as they arrive.
#include "webtier/webnode/request_head.h"

#include <gtest/gtest.h>

#include <string>

namespace webtier::webnode {
namespace {

TEST(HeadScanner, FindsTheEndOfTheHeadAcrossPieces) {
  HeadScanner scan(100);
  const std::string head = "\r\nGET /a?b=c HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\nbody";
  for (size_t i = 0; i + 1 < head.find("\r\n\r\n") + 3; ++i) {
    ASSERT_EQ(scan.Feed(head.substr(i, 1)), HeadScanner::State::kMore) << i;
  }
  EXPECT_EQ(scan.Feed(head.substr(head.find("\r\n\r\n") + 2)), HeadScanner::State::kDone);
  EXPECT_EQ(scan.head_bytes(), head.find("body"));  // where the body (or the next request) starts
  EXPECT_EQ(scan.Feed("more"), HeadScanner::State::kDone);
  EXPECT_EQ(scan.head_bytes(), head.find("body"));
  EXPECT_EQ(scan.method(), "GET");
  EXPECT_EQ(scan.target(), "/a?b=c");
  scan.Reset();
  EXPECT_EQ(scan.Feed("POST /p HTTP/1.1\nHost: y\n\nGET /next"), HeadScanner::State::kDone);  // bare LF
  EXPECT_EQ(scan.target(), "/p");
  EXPECT_EQ(scan.head_bytes(), 26u);
}

TEST(HeadScanner, RefusesOneFieldOverTheLimit) {
  HeadScanner at_limit(3);
  EXPECT_EQ(at_limit.Feed("GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n"), HeadScanner::State::kDone);
  HeadScanner over(3);
  EXPECT_EQ(over.Feed("GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\n"), HeadScanner::State::kTooManyFields);
  // Decided as the line arrives, whatever follows.
  EXPECT_EQ(over.Feed("\r\n"), HeadScanner::State::kTooManyFields);
}

TEST(HeadScanner, RefusesASecondHost) {
  HeadScanner scan(100);
  EXPECT_EQ(scan.Feed("GET / HTTP/1.1\r\nHost: a\r\nX-Host: b\r\nhOsT: c\r\n\r\n"), HeadScanner::State::kDuplicateHost);
}

TEST(HeadScanner, ThousandsOfFieldsInOnePass) {
  std::string head = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 5000; ++i) head += "X-" + std::to_string(i) + ": v\r\n";
  HeadScanner scan(10000);
  EXPECT_EQ(scan.Feed(head + "\r\n"), HeadScanner::State::kDone);
  HeadScanner limited(100);
  EXPECT_EQ(limited.Feed(head), HeadScanner::State::kTooManyFields);
}

}  // namespace
}  // namespace webtier::webnode
