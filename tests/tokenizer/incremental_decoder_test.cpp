#include "tokenizer/incremental_decoder.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "test_corpus.h"
#include "tokenizer/bpe_trainer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace moeserve {
namespace {

using Ids = std::vector<int32_t>;
const std::string kFffd = "\xEF\xBF\xBD";

const Tokenizer& trained() {
  static const Tokenizer* tok = [] {
    auto json = train_bytelevel_bpe_json(testing_corpus::english_like(10000, 21), 512,
                                         {"<s>", "</s>"});
    if (!json.ok()) std::abort();
    auto t = Tokenizer::from_json(*json);
    if (!t.ok()) std::abort();
    return new Tokenizer(std::move(*t));
  }();
  return *tok;
}

// Byte b is token 2 + b in the trained vocabulary (two specials first).
int32_t byte_id(uint8_t b) { return 2 + b; }

bool is_valid_utf8(const std::string& s) { return utf8_lossy(s) == s; }

TEST(Utf8Test, LossyMatchesMaximalSubpartRule) {
  EXPECT_EQ(utf8_lossy("a\xF0\x9F\x98"), "a" + kFffd);             // truncated 4-byte: one
  EXPECT_EQ(utf8_lossy("\xE0\x80"), kFffd + kFffd);                // overlong lead: two
  EXPECT_EQ(utf8_lossy("\xED\xA0\x80"), kFffd + kFffd + kFffd);    // surrogate: three
  EXPECT_EQ(utf8_lossy("\xC3\xA9\x80"), "é" + kFffd);              // stray continuation
  EXPECT_EQ(utf8_lossy("\xF4\x90\x80\x80"), kFffd + kFffd + kFffd + kFffd);  // > U+10FFFF
  std::string out;
  EXPECT_EQ(utf8_append_lossy("ok\xE4\xBD", /*final=*/false, &out), 2u);
  EXPECT_EQ(out, "ok");
}

TEST(IncrementalDecoderTest, HoldsBackSplitCharacters) {
  const Tokenizer& tok = trained();
  IncrementalDecoder dec(tok, /*skip_special_tokens=*/true);
  // 😀 = F0 9F 98 80, fed one byte token at a time.
  EXPECT_EQ(dec.push(byte_id(0xF0)), "");
  EXPECT_EQ(dec.push(byte_id(0x9F)), "");
  EXPECT_EQ(dec.push(byte_id(0x98)), "");
  EXPECT_EQ(dec.num_pending_bytes(), 3u);
  EXPECT_EQ(dec.push(byte_id(0x80)), "😀");
  EXPECT_EQ(dec.num_pending_bytes(), 0u);
  EXPECT_EQ(dec.push(byte_id('A')), "A");
  EXPECT_EQ(dec.flush(), "");
}

TEST(IncrementalDecoderTest, InvalidSequencesBecomeReplacementChars) {
  const Tokenizer& tok = trained();
  IncrementalDecoder dec(tok, true);
  EXPECT_EQ(dec.push(byte_id(0xE4)), "");
  EXPECT_EQ(dec.push(byte_id('A')), kFffd + "A");   // E4 41: the E4 was invalid after all
  EXPECT_EQ(dec.push(byte_id(0x80)), kFffd);         // a lone continuation byte at once
  EXPECT_EQ(dec.push(byte_id(0xE4)), "");
  EXPECT_EQ(dec.push(byte_id(0xBD)), "");
  EXPECT_EQ(dec.flush(), kFffd);                     // truncated at the end: one U+FFFD
}

TEST(IncrementalDecoderTest, SkipsSpecialTokensLikeDecode) {
  const Tokenizer& tok = trained();
  IncrementalDecoder skip(tok, true), keep(tok, false);
  const Ids ids = tok.encode("<s>hi</s>", false);
  std::string a, b;
  for (int32_t id : ids) {
    a += skip.push(id);
    b += keep.push(id);
  }
  a += skip.flush();
  b += keep.flush();
  EXPECT_EQ(a, "hi");
  EXPECT_EQ(b, "<s>hi</s>");
}

TEST(IncrementalDecoderTest, ConcatenationEqualsDecodeAndNeverSplitsCharacters) {
  const Tokenizer& tok = trained();
  std::mt19937 rng(77);
  int multi_token_chars = 0;
  for (int i = 0; i < 300; ++i) {
    std::string text = testing_corpus::random_utf8(rng, 1 + i % 50);
    if (i % 3 == 0) text += "</s>";
    Ids ids = tok.encode(text);
    if (i % 5 == 0) ids.push_back(byte_id(0xE4));  // ends inside a character
    for (bool skip : {true, false}) {
      IncrementalDecoder dec(tok, skip);
      std::string streamed;
      for (int32_t id : ids) {
        const std::string piece = dec.push(id);
        ASSERT_TRUE(is_valid_utf8(piece)) << "case " << i;
        if (piece.empty() && dec.num_pending_bytes() > 0) ++multi_token_chars;
        streamed += piece;
      }
      const std::string tail = dec.flush();
      ASSERT_TRUE(is_valid_utf8(tail));
      streamed += tail;
      ASSERT_EQ(streamed, tok.decode(ids, skip)) << "case " << i;
    }
  }
  // The random text really exercised characters spread over several tokens.
  EXPECT_GT(multi_token_chars, 50);
}

}  // namespace
}  // namespace moeserve
