#include "engine/stop_checker.h"

#include <gtest/gtest.h>

namespace moeserve::engine {
namespace {

std::string feed(StopChecker& c, const std::vector<std::string>& pieces, bool* stopped,
                 std::string* reason) {
  std::string emitted;
  for (const std::string& p : pieces) {
    StopCheckResult r = c.push(p);
    emitted += r.text_safe_to_emit;
    if (r.stopped) {
      *stopped = true;
      *reason = r.stop_reason;
    }
  }
  return emitted;
}

TEST(StopCheckerTest, DetectsAcrossTokenBoundariesAndTruncates) {
  StopChecker c({"</end>"}, false);
  bool stopped = false;
  std::string reason;
  EXPECT_EQ(feed(c, {"Hello", " wor", "ld</", "en", "d> tail"}, &stopped, &reason), "Hello world");
  EXPECT_TRUE(stopped);
  EXPECT_EQ(reason, "</end>");
  EXPECT_EQ(c.output_text(), "Hello world");
  EXPECT_TRUE(c.push("more").text_safe_to_emit.empty());
}

TEST(StopCheckerTest, NeverEmitsAPartialStopPrefix) {
  StopChecker c({"STOP"}, false);
  StopCheckResult r = c.push("abcST");
  EXPECT_EQ(r.text_safe_to_emit, "abc");
  r = c.push("O");
  EXPECT_EQ(r.text_safe_to_emit, "");
  r = c.push("x");  // not a stop after all: released
  EXPECT_EQ(r.text_safe_to_emit, "STOx");
  EXPECT_FALSE(r.stopped);
  r = c.push("S");
  EXPECT_EQ(r.text_safe_to_emit, "");
  EXPECT_EQ(c.flush(), "S");
  EXPECT_EQ(c.output_text(), "abcSTOxS");
}

TEST(StopCheckerTest, IncludeStopStringKeepsIt) {
  StopChecker c({"\n\n"}, true);
  bool stopped = false;
  std::string reason;
  EXPECT_EQ(feed(c, {"a\n", "\nb"}, &stopped, &reason), "a\n\n");
  EXPECT_TRUE(stopped);
}

TEST(StopCheckerTest, FirstStopStringInListOrderWins) {
  // vLLM tries stop strings in order; the first found wins even if another occurs earlier.
  StopChecker c({"world", "hello"}, false);
  StopCheckResult r = c.push("hello world");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.stop_reason, "world");
  EXPECT_EQ(c.output_text(), "hello ");
}

TEST(StopCheckerTest, NoStopStringsPassesEverythingThrough) {
  StopChecker c({}, false);
  EXPECT_EQ(c.push("abc").text_safe_to_emit, "abc");
  EXPECT_EQ(c.flush(), "");
}

TEST(StopCheckerTest, MultibyteStopString) {
  StopChecker c({"。"}, false);  // 3 bytes in UTF-8
  StopCheckResult r = c.push("你好");
  EXPECT_EQ(r.text_safe_to_emit, "你好");
  r = c.push("。再见");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.text_safe_to_emit, "");
  EXPECT_EQ(c.output_text(), "你好");
}

}  // namespace
}  // namespace moeserve::engine
