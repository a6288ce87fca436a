#include "tokenizer/pretokenizer.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tokenizer/byte_level.h"

namespace moeserve {
namespace {

std::vector<std::string> split(const PreTokenizer& pt, std::string_view text) {
  std::vector<std::string> out;
  pt.split(text, &out);
  return out;
}

// Expected words are written as raw text; a ByteLevel step maps them to byte-level chars.
std::vector<std::string> byte_level(const std::vector<std::string>& words) {
  std::vector<std::string> out;
  for (const std::string& w : words) {
    out.emplace_back();
    byte_level_encode(w, &out.back());
  }
  return out;
}

PreTokenizer parse(const std::string& json_text) {
  auto pt = PreTokenizer::from_json(Json::parse(json_text), JsonFields("test.json"),
                                    "pre_tokenizer");
  EXPECT_TRUE(pt.ok()) << pt.status();
  return pt.ok() ? std::move(*pt) : PreTokenizer();
}

// DeepSeek-V3's pre_tokenizer, verbatim from its tokenizer.json.
constexpr const char* kDeepSeekV3PreTokenizer = R"json({
  "type": "Sequence",
  "pretokenizers": [
    {"type": "Split", "pattern": {"Regex": "\\p{N}{1,3}"}, "behavior": "Isolated", "invert": false},
    {"type": "Split", "pattern": {"Regex": "[一-龥぀-ゟ゠-ヿ]+"}, "behavior": "Isolated", "invert": false},
    {"type": "Split", "pattern": {"Regex": "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"}, "behavior": "Isolated", "invert": false},
    {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}
  ]
})json";

TEST(PreTokenizerTest, Gpt2RegexSplitsLikeGpt2) {
  auto pt = PreTokenizer::gpt2_byte_level();
  ASSERT_TRUE(pt.ok()) << pt.status();
  EXPECT_TRUE(pt->byte_level());
  EXPECT_EQ(split(*pt, "Hello world's 123  test\n"),
            byte_level({"Hello", " world", "'s", " 123", " ", " test", "\n"}));
  // The byte-level image of a space is U+0120 'Ġ', of a newline U+010A 'Ċ'.
  EXPECT_EQ(split(*pt, "Hello world's 123  test\n")[1], "\xC4\xA0world");
  EXPECT_EQ(split(*pt, "I'll go, they've gone!!"),
            byte_level({"I", "'ll", " go", ",", " they", "'ve", " gone", "!!"}));
  EXPECT_EQ(split(*pt, "naïve café 你好"), byte_level({"naïve", " café", " 你好"}));
  EXPECT_TRUE(split(*pt, "").empty());
}

TEST(PreTokenizerTest, InvalidUtf8BecomesItsOwnByteWords) {
  auto pt = PreTokenizer::gpt2_byte_level();
  ASSERT_TRUE(pt.ok());
  // 0xFF can never match: it becomes a gap word between the matches around it.
  EXPECT_EQ(split(*pt, "ab\xFF" "cd"), byte_level({"ab", "\xFF", "cd"}));
  EXPECT_EQ(split(*pt, "\xE4\xBD"), byte_level({"\xE4\xBD"}));  // truncated 你
}

TEST(PreTokenizerTest, ByteLevelAddPrefixSpace) {
  PreTokenizer pt = parse(R"({"type":"ByteLevel","add_prefix_space":true,"use_regex":true})");
  EXPECT_EQ(split(pt, "Hello there"), byte_level({" Hello", " there"}));
  PreTokenizer no_regex = parse(R"({"type":"ByteLevel","add_prefix_space":false,"use_regex":false})");
  EXPECT_EQ(split(no_regex, "Hello there"), byte_level({"Hello there"}));
}

TEST(PreTokenizerTest, DeepSeekV3DigitsInGroupsOfThree) {
  PreTokenizer pt = parse(kDeepSeekV3PreTokenizer);
  EXPECT_EQ(split(pt, "12345"), byte_level({"123", "45"}));
  EXPECT_EQ(split(pt, "abc1234567def"), byte_level({"abc", "123", "456", "7", "def"}));
}

TEST(PreTokenizerTest, DeepSeekV3CjkRuns) {
  PreTokenizer pt = parse(kDeepSeekV3PreTokenizer);
  EXPECT_EQ(split(pt, "你好世界abc"), byte_level({"你好世界", "abc"}));
  // Kanji, hiragana and katakana (including the prolonged sound mark) form one run.
  EXPECT_EQ(split(pt, "日本語のテキスト"), byte_level({"日本語のテキスト"}));
  EXPECT_EQ(split(pt, "x中文y"), byte_level({"x", "中文", "y"}));
}

TEST(PreTokenizerTest, DeepSeekV3Punctuation) {
  PreTokenizer pt = parse(kDeepSeekV3PreTokenizer);
  EXPECT_EQ(split(pt, "Hello, world! I'm here.\n\nNew"),
            byte_level({"Hello", ",", " world", "!", " I", "'m", " here", ".\n\n", "New"}));
  EXPECT_EQ(split(pt, "a.b  c"), byte_level({"a", ".b", " ", " c"}));
  EXPECT_EQ(split(pt, "x = (y + 1);"),
            byte_level({"x", " =", " (", "y", " +", " ", "1", ");"}));
}

TEST(PreTokenizerTest, SplitBehaviors) {
  auto with = [](const std::string& behavior, bool invert) {
    return parse(R"({"type":"Split","pattern":{"String":"-"},"behavior":")" + behavior +
                 R"(","invert":)" + (invert ? "true" : "false") + "}");
  };
  const std::string text = "the-final--countdown";
  EXPECT_EQ(split(with("Removed", false), text),
            (std::vector<std::string>{"the", "final", "countdown"}));
  EXPECT_EQ(split(with("Isolated", false), text),
            (std::vector<std::string>{"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(split(with("MergedWithPrevious", false), text),
            (std::vector<std::string>{"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(split(with("MergedWithNext", false), text),
            (std::vector<std::string>{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(split(with("Contiguous", false), text),
            (std::vector<std::string>{"the", "-", "final", "--", "countdown"}));
  EXPECT_EQ(split(with("Removed", true), text), (std::vector<std::string>{"-", "-", "-"}));
}

TEST(PreTokenizerTest, RegexSplitIsolatedKeepsGaps) {
  PreTokenizer pt = parse(R"({"type":"Split","pattern":{"Regex":"\\s+"},"behavior":"Removed","invert":false})");
  EXPECT_EQ(split(pt, "  a b\t\tc "), (std::vector<std::string>{"a", "b", "c"}));
}

TEST(PreTokenizerTest, ErrorsNameTheField) {
  auto bad_regex = PreTokenizer::from_json(
      Json::parse(R"({"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"(a"},"behavior":"Isolated"}]})"),
      JsonFields("tok.json"), "pre_tokenizer");
  ASSERT_FALSE(bad_regex.ok());
  EXPECT_NE(bad_regex.status().message().find("tok.json: pre_tokenizer.pretokenizers[0].pattern.Regex"),
            std::string::npos)
      << bad_regex.status();

  auto unsupported = PreTokenizer::from_json(Json::parse(R"({"type":"Metaspace"})"),
                                             JsonFields("tok.json"), "pre_tokenizer");
  ASSERT_FALSE(unsupported.ok());
  EXPECT_NE(unsupported.status().message().find("Metaspace"), std::string::npos);

  auto bad_behavior = PreTokenizer::from_json(
      Json::parse(R"({"type":"Split","pattern":{"String":"x"},"behavior":"Sideways"})"),
      JsonFields("tok.json"), "pre_tokenizer");
  ASSERT_FALSE(bad_behavior.ok());
  EXPECT_NE(bad_behavior.status().message().find("pre_tokenizer.behavior"), std::string::npos);
}

}  // namespace
}  // namespace moeserve
