// log::Quote and log::UtcTimestamp: what a value can do to a log line.
#include "webtier/common/log.h"

#include <gtest/gtest.h>

namespace webtier::log {
namespace {

TEST(LogQuote, QuotesOnlyWhatNeedsIt) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"plain", "plain"},
      {"", "\"\""},
      {"two words", "\"two words\""},
      {"a=b", "\"a=b\""},
      {"say \"hi\"", "\"say \\\"hi\\\"\""},
      {"back\\slash", "back\\slash"},            // alone it needs no quotes
      {"back\\slash here", "\"back\\\\slash here\""},
  };
  for (const auto& [in, want] : cases) EXPECT_EQ(Quote(in), want) << in;
}

// A client's header value in a log line (the webnode's access line names
// X-Request-Id): no byte of it may end the line, forge a field or reach a
// terminal as a control sequence.
TEST(LogQuote, ControlBytesCannotEndTheLineOrReachTheTerminal) {
  EXPECT_EQ(Quote("id\nts=forged level=error"), "\"id\\nts=forged level=error\"");
  EXPECT_EQ(Quote("id\r"), "\"id\\x0d\"");
  EXPECT_EQ(Quote("\x1b[2Jred"), "\"\\x1b[2Jred\"");
  EXPECT_EQ(Quote(std::string("nul\0x", 5)), "\"nul\\x00x\"");
  EXPECT_EQ(Quote("del\x7f"), "\"del\\x7f\"");
  EXPECT_EQ(Quote("tab\there"), "\"tab\\x09here\"");
}

TEST(LogTimestamp, Rfc3339UtcWithMilliseconds) {
  const auto t = std::chrono::system_clock::time_point(std::chrono::milliseconds(1780000000123));
  EXPECT_EQ(UtcTimestamp(t), "2026-05-28T20:26:40.123Z");
}

}  // namespace
}  // namespace webtier::log
