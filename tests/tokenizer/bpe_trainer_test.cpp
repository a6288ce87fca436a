#include "tokenizer/bpe_trainer.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "test_corpus.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace moeserve {
namespace {

using Ids = std::vector<int32_t>;

TEST(BpeTrainerTest, LearnsFrequentWordsAndReportsIds) {
  const std::vector<std::string> specials = {"<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>",
                                             "<｜User｜>", "<｜Assistant｜>"};
  auto json = train_bytelevel_bpe_json(testing_corpus::english_like(20000, 7), 600, specials);
  ASSERT_TRUE(json.ok()) << json.status();
  auto tok = Tokenizer::from_json(*json, "trained.json");
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ(tok->vocab_size(), 600);
  for (int32_t i = 0; i < 4; ++i) {
    EXPECT_EQ(tok->token_to_id(specials[static_cast<size_t>(i)]), i);
    EXPECT_TRUE(tok->is_special(i));
  }
  EXPECT_EQ(tok->token_to_id("A"), 4 + 'A');   // byte tokens follow the specials
  EXPECT_EQ(tok->token_to_id("Ġ"), 4 + ' ');
  EXPECT_EQ(tok->bos_id(), 0);
  // Frequent corpus words become single tokens.
  EXPECT_EQ(tok->encode(" the", false).size(), 1u);
  EXPECT_EQ(tok->encode(" model", false).size(), 1u);
  // BOS only with add_special_tokens; specials in text map to their ids.
  const Ids with = tok->encode("<｜User｜>hi<｜Assistant｜>");
  ASSERT_GE(with.size(), 4u);
  EXPECT_EQ(with.front(), 0);
  EXPECT_EQ(with[1], 2);
  EXPECT_EQ(with.back(), 3);
  const Ids without = tok->encode("<｜User｜>hi<｜Assistant｜>", false);
  EXPECT_EQ(without, Ids(with.begin() + 1, with.end()));
  EXPECT_EQ(tok->decode(with), "hi");
  EXPECT_EQ(tok->decode(with, false), "<｜begin▁of▁sentence｜><｜User｜>hi<｜Assistant｜>");
}

TEST(BpeTrainerTest, DeterministicAndRejectsBadArguments) {
  const std::string corpus = testing_corpus::english_like(3000, 3);
  auto a = train_bytelevel_bpe_json(corpus, 300, {"<s>"});
  auto b = train_bytelevel_bpe_json(corpus, 300, {"<s>"});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_FALSE(train_bytelevel_bpe_json(corpus, 256, {"<s>"}).ok());
  EXPECT_FALSE(train_bytelevel_bpe_json(corpus, 300, {"<s>", "<s>"}).ok());
  EXPECT_FALSE(train_bytelevel_bpe_json(corpus, 300, {""}).ok());
  EXPECT_FALSE(train_bytelevel_bpe_json(corpus, 300, {"A"}).ok());  // collides with a byte token
  // A tiny corpus runs out of pairs before the requested size.
  auto tiny = train_bytelevel_bpe_json("abab", 1000, {});
  ASSERT_TRUE(tiny.ok());
  auto tok = Tokenizer::from_json(*tiny);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_LT(tok->vocab_size(), 1000);
  EXPECT_EQ(tok->encode("abab").size(), 1u);
}

TEST(BpeTrainerTest, RoundTripsRandomUtf8) {
  auto json = train_bytelevel_bpe_json(testing_corpus::english_like(20000, 11), 512,
                                       {"<s>", "</s>"});
  ASSERT_TRUE(json.ok()) << json.status();
  auto tok = Tokenizer::from_json(*json);
  ASSERT_TRUE(tok.ok()) << tok.status();
  std::mt19937 rng(1234);
  for (int i = 0; i < 300; ++i) {
    const std::string text = testing_corpus::random_utf8(rng, 1 + i % 60);
    const Ids ids = tok->encode(text, false);
    ASSERT_EQ(tok->decode(ids), text) << "case " << i;
    const Ids with_bos = tok->encode(text);
    ASSERT_EQ(with_bos.front(), 0);
    ASSERT_EQ(tok->decode(with_bos), text);
  }
}

TEST(BpeTrainerTest, InvalidUtf8InputRoundTripsAsReplacementChars) {
  auto json = train_bytelevel_bpe_json(testing_corpus::english_like(5000, 5), 400, {"<s>"});
  ASSERT_TRUE(json.ok());
  auto tok = Tokenizer::from_json(*json);
  ASSERT_TRUE(tok.ok());
  std::mt19937 rng(99);
  std::uniform_int_distribution<int> byte(0, 255);
  for (int i = 0; i < 200; ++i) {
    std::string text;
    for (int k = 0; k < 1 + i % 40; ++k) text.push_back(static_cast<char>(byte(rng)));
    const Ids ids = tok->encode(text, false);
    ASSERT_EQ(tok->decode(ids), utf8_lossy(text)) << "case " << i;
  }
}

}  // namespace
}  // namespace moeserve
