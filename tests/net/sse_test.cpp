#include "net/sse.h"

#include <gtest/gtest.h>

namespace moeserve::net {
namespace {
using Json = nlohmann::ordered_json;

TEST(Sse, Framing) {
  Json j;
  j["a"] = 1;
  j["b"] = "x\ny";
  EXPECT_EQ(sse_event(j), "data: {\"a\":1,\"b\":\"x\\ny\"}\n\n");
  EXPECT_EQ(sse_done(), "data: [DONE]\n\n");
  EXPECT_EQ(sse_data("{}"), "data: {}\n\n");
}

TEST(Sse, InvalidUtf8IsReplacedNotThrown) {
  Json j;
  j["t"] = std::string("ok\xff\xfe");
  const std::string e = sse_event(j);
  EXPECT_EQ(e, "data: {\"t\":\"ok\xEF\xBF\xBD\xEF\xBF\xBD\"}\n\n");
}

}  // namespace
}  // namespace moeserve::net
