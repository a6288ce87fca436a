#include "net/json_intake.h"

#include <string>

#include "gtest/gtest.h"

namespace moeserve::net {
namespace {

std::string nested(int levels, char open, char close) {
  return std::string(static_cast<size_t>(levels), open) +
         std::string(static_cast<size_t>(levels), close);
}

TEST(JsonIntake, ScanCountsDepthAndValues) {
  JsonLimits l;
  JsonShape s = scan_json(R"({"a":[1,2,{"b":null}],"c":"x"})", l);
  EXPECT_EQ(s.max_depth, 3);
  // object, array, 1, 2, object, null, "a"/"b"/"c" keys and "x" are strings.
  EXPECT_EQ(s.num_values, 10u);
}

TEST(JsonIntake, BracketsInsideStringsAreNotStructure) {
  JsonLimits l;
  l.max_depth = 2;
  const std::string text = R"({"s":"[[[[{{{{ \" ]]]] \\","t":["\"[["]})";
  EXPECT_EQ(scan_json(text, l).max_depth, 2);
  auto j = parse_json(text, l);
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ((*j)["t"][0], "\"[[");
}

TEST(JsonIntake, RefusesDeepDocumentsWithoutRecursing) {
  // The issue's input: 100000 levels inside a chat body. Nothing may recurse over it.
  const std::string body = R"({"model":"m","messages":)" + nested(100000, '[', ']') + "}";
  auto j = parse_json(body);
  ASSERT_FALSE(j.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(j.status()));
  EXPECT_EQ(intake_http_status(j.status()), 400);
  EXPECT_NE(j.status().message().find("deeper than 128"), std::string::npos);
  // Unbalanced and object nesting too.
  EXPECT_FALSE(parse_json(std::string(200000, '[')).ok());
  EXPECT_FALSE(parse_json(nested(1000, '{', '}')).ok());
}

TEST(JsonIntake, DepthLimitIsExact) {
  JsonLimits l;
  l.max_depth = 4;
  EXPECT_TRUE(parse_json(nested(4, '[', ']'), l).ok());
  EXPECT_FALSE(parse_json(nested(5, '[', ']'), l).ok());
  EXPECT_TRUE(parse_json<nlohmann::ordered_json>(R"({"a":{"b":{"c":[1]}}})", l).ok());
  EXPECT_FALSE(parse_json<nlohmann::ordered_json>(R"({"a":{"b":{"c":[[1]]}}})", l).ok());
}

TEST(JsonIntake, SizeLimitIs413) {
  JsonLimits l;
  l.max_bytes = 16;
  auto j = parse_json(R"({"prompt":"0123456789"})", l);
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(intake_http_status(j.status()), 413);
}

TEST(JsonIntake, ValueLimit) {
  JsonLimits l;
  l.max_values = 100;
  std::string many = "[";
  for (int i = 0; i < 200; ++i) many += i ? ",0" : "0";
  many += "]";
  auto j = parse_json(many, l);
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(intake_http_status(j.status()), 400);
  l.max_values = 1000;
  EXPECT_TRUE(parse_json(many, l).ok());
}

TEST(JsonIntake, InvalidJsonAndInvalidUtf8Are400) {
  for (const std::string& bad :
       {std::string("{"), std::string("{\"a\":}"), std::string("{\"a\":\"\xff\xfe\"}"),
        std::string("\"\\"), std::string("")}) {
    auto j = parse_json(bad);
    ASSERT_FALSE(j.ok()) << bad;
    EXPECT_EQ(intake_http_status(j.status()), 400);
  }
}

}  // namespace
}  // namespace moeserve::net
