#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace moeserve {
namespace {

using Ids = std::vector<int32_t>;

// A hand-built byte-level BPE: "hello" and " world" are single tokens after 9 merges.
// 'Ġ' (U+0120) is the byte-level image of a space.
constexpr const char* kVocab = R"({
  "h": 0, "e": 1, "l": 2, "o": 3, "Ġ": 4, "w": 5, "r": 6, "d": 7,
  "he": 8, "ll": 9, "hell": 10, "hello": 11, "Ġw": 12, "or": 13, "Ġwor": 14, "Ġworl": 15,
  "Ġworld": 16, "<s>": 17, "</s>": 18, "<unk>": 19
})";
constexpr const char* kMergesPairs =
    R"([["h","e"],["l","l"],["he","ll"],["hell","o"],["Ġ","w"],["o","r"],["Ġw","or"],["Ġwor","l"],["Ġworl","d"]])";
constexpr const char* kMergesLegacy =
    R"(["#version: 0.2","h e","l l","he ll","hell o","Ġ w","o r","Ġw or","Ġwor l","Ġworl d"])";

std::string fixture(const std::string& merges, const std::string& model_extra = "",
                    const std::string& added_extra = "") {
  return std::string(R"({
    "version": "1.0", "truncation": null, "padding": null,
    "added_tokens": [
      {"id": 17, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
      {"id": 18, "content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true})") +
         added_extra + R"(
    ],
    "normalizer": {"type": "Sequence", "normalizers": []},
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
    "post_processor": {
      "type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
      "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
      "special_tokens": {"<s>": {"id": "<s>", "ids": [17], "tokens": ["<s>"]}}
    },
    "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
    "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
              "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, )" +
         model_extra + R"("vocab": )" + kVocab + R"(, "merges": )" + merges + "}}";
}

Tokenizer make(const std::string& json) {
  auto tok = Tokenizer::from_json(json, "fixture.json");
  EXPECT_TRUE(tok.ok()) << tok.status();
  if (!tok.ok()) std::abort();
  return std::move(*tok);
}

TEST(TokenizerTest, EncodesKnownIds) {
  Tokenizer tok = make(fixture(kMergesPairs));
  EXPECT_EQ(tok.encode("hello world"), (Ids{17, 11, 16}));
  EXPECT_EQ(tok.encode("hello world", /*add_special_tokens=*/false), (Ids{11, 16}));
  EXPECT_EQ(tok.encode("hello hello", false), (Ids{11, 4, 11}));  // no merge (Ġ, h)
  EXPECT_EQ(tok.encode("wordle", false), (Ids{5, 13, 7, 2, 1}));
  // Characters missing from the vocab with no unk_token are dropped.
  EXPECT_EQ(tok.encode("hellx", false), (Ids{10}));
  EXPECT_EQ(tok.encode("", false), Ids{});
  EXPECT_EQ(tok.encode(""), Ids{17});
  EXPECT_EQ(tok.vocab_size(), 20);
  EXPECT_EQ(tok.bos_id(), 17);  // from the template when there is no tokenizer_config.json
}

TEST(TokenizerTest, BothMergeSpellingsAgree) {
  Tokenizer a = make(fixture(kMergesPairs));
  Tokenizer b = make(fixture(kMergesLegacy));
  for (const char* text : {"hello world", "hello hello", "world hello wor", "ollehdlrow", "he ll o"}) {
    EXPECT_EQ(a.encode(text), b.encode(text)) << text;
  }
}

TEST(TokenizerTest, LowestRankAndLeftmostMergeFirst) {
  const std::string json = R"({"model":{"type":"BPE","vocab":{"a":0,"b":1,"aa":2,"ab":3,"aab":4},
      "merges":[["a","b"],["a","a"],["a","ab"]]}})";
  Tokenizer tok = make(json);
  // (a, b) outranks (a, a); the (a, ab) merge then applies to what it produced.
  EXPECT_EQ(tok.encode("aab"), (Ids{4}));
  EXPECT_EQ(tok.encode("aaa"), (Ids{2, 0}));  // equal ranks: leftmost first
}

TEST(TokenizerTest, UnknownTokenAndFuse) {
  const std::string base = R"({"model":{"type":"BPE","unk_token":"<unk>","fuse_unk":FUSE,
      "vocab":{"<unk>":0,"a":1,"b":2},"merges":[]}})";
  auto with_fuse = [&](bool fuse) {
    std::string j = base;
    j.replace(j.find("FUSE"), 4, fuse ? "true" : "false");
    return make(j);
  };
  EXPECT_EQ(with_fuse(false).encode("axyb"), (Ids{1, 0, 0, 2}));
  EXPECT_EQ(with_fuse(true).encode("axyb"), (Ids{1, 0, 2}));
}

TEST(TokenizerTest, IgnoreMergesEmitsWholeWords) {
  const std::string json = R"({"model":{"type":"BPE","ignore_merges":IGN,
      "vocab":{"a":0,"b":1,"c":2,"ab":3,"abc":4},"merges":[["a","b"]]}})";
  std::string on = json, off = json;
  on.replace(on.find("IGN"), 3, "true");
  off.replace(off.find("IGN"), 3, "false");
  EXPECT_EQ(make(on).encode("abc"), (Ids{4}));
  EXPECT_EQ(make(off).encode("abc"), (Ids{3, 2}));
}

TEST(TokenizerTest, ContinuingSubwordPrefixAndSuffix) {
  const std::string json = R"({"model":{"type":"BPE","continuing_subword_prefix":"##",
      "end_of_word_suffix":"</w>","vocab":{"a":0,"##b":1,"##c</w>":2,"a##b":3,"ab":4},
      "merges":[["a","##b"]]}})";
  Tokenizer tok = make(json);
  EXPECT_EQ(tok.encode("abc"), (Ids{4, 2}));
}

TEST(TokenizerTest, AddedTokensAreSplitOutFirst) {
  Tokenizer tok = make(fixture(
      kMergesPairs, "",
      R"(, {"id": 20, "content": "<｜User｜>", "special": false, "normalized": true},
         {"id": 21, "content": "<｜User｜>x", "special": true},
         {"id": 22, "content": "<mask>", "lstrip": true, "rstrip": true, "special": true},
         {"id": 23, "content": "hell", "single_word": true, "special": false})"));
  EXPECT_EQ(tok.encode("<s>hello</s>", false), (Ids{17, 11, 18}));
  EXPECT_EQ(tok.encode("hello<｜User｜>world", false), (Ids{11, 20, 5, 13, 2, 7}));
  // Longest match wins over the shorter prefix.
  EXPECT_EQ(tok.encode("<｜User｜>x", false), (Ids{21}));
  // lstrip/rstrip absorb the surrounding spaces.
  EXPECT_EQ(tok.encode("hello <mask> world", false), (Ids{11, 22, 5, 13, 2, 7}));
  // single_word: "hell" alone matches, inside "hello" it does not.
  EXPECT_EQ(tok.encode("hell", false), (Ids{23}));
  EXPECT_EQ(tok.encode("hello", false), (Ids{11}));
  EXPECT_EQ(tok.token_to_id("<｜User｜>"), 20);
  EXPECT_EQ(tok.id_to_token(21), "<｜User｜>x");
  EXPECT_TRUE(tok.is_special(17));
  EXPECT_FALSE(tok.is_special(20));
  EXPECT_FALSE(tok.is_special(11));
}

TEST(TokenizerTest, DecodeSkipsSpecialTokensOnRequest) {
  Tokenizer tok = make(fixture(
      kMergesPairs, "", R"(, {"id": 20, "content": "<｜User｜>", "special": false})"));
  const Ids ids = {17, 11, 20, 16, 18};
  EXPECT_EQ(tok.decode(ids), "hello<｜User｜> world");
  EXPECT_EQ(tok.decode(ids, /*skip_special_tokens=*/false), "<s>hello<｜User｜> world</s>");
  // Unknown ids are ignored, not fatal.
  EXPECT_EQ(tok.decode(Ids{11, -1, 999999, 16}), "hello world");
  EXPECT_EQ(tok.token_bytes(16), " world");
}

TEST(TokenizerTest, ByteTokensDecodeLossily) {
  // Byte-level images: 0xE4 -> 'ä' (U+00E4), 0xBD -> '½', 0xA0 -> U+0142 'ł'.
  const std::string json = R"({"model":{"type":"BPE","vocab":{"ä":0,"½":1,"ł":2,"A":3},"merges":[]},
      "decoder":{"type":"Sequence","decoders":[{"type":"ByteLevel"}]}})";
  Tokenizer tok = make(json);
  EXPECT_EQ(tok.decode(Ids{0, 1, 2}), "你");             // E4 BD A0
  EXPECT_EQ(tok.decode(Ids{0, 1}), "\xEF\xBF\xBD");      // truncated: one U+FFFD
  EXPECT_EQ(tok.decode(Ids{0, 3}), "\xEF\xBF\xBD" "A");  // broken by 'A'
}

TEST(TokenizerTest, InvalidUtf8InputDoesNotCrash) {
  Tokenizer tok = make(fixture(kMergesPairs));
  // Bytes without vocab entries are dropped; the valid parts still tokenize.
  EXPECT_EQ(tok.encode("hello\xFF\xFEworld", false), (Ids{11, 5, 13, 2, 7}));
  EXPECT_EQ(tok.encode("\xC3", false), Ids{});
}

TEST(TokenizerTest, ConcurrentEncodeIsConsistent) {
  Tokenizer tok = make(fixture(kMergesPairs));
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        if (tok.encode("hello world hello wordle", false) != (Ids{11, 16, 4, 11, 14, 7, 2, 1})) {
          ++failures[static_cast<size_t>(t)];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures, (std::vector<int>{0, 0, 0, 0}));
}

void expect_error(const std::string& json, const std::string& needle) {
  auto tok = Tokenizer::from_json(json, "bad/tokenizer.json");
  ASSERT_FALSE(tok.ok()) << "accepted: " << json;
  EXPECT_EQ(tok.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string msg(tok.status().message());
  EXPECT_NE(msg.find("bad/tokenizer.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find(needle), std::string::npos) << msg;
}

TEST(TokenizerTest, MalformedFilesAreErrorsNamingTheField) {
  expect_error("{", "not valid JSON");
  expect_error("[]", "expected an object");
  expect_error(R"({"version":"1.0"})", "model: missing");
  expect_error(R"({"model":{"type":"BPE","vocab":[],"merges":[]}})", "model.vocab: expected an object");
  expect_error(R"({"model":{"type":"BPE","vocab":{"a":"x"},"merges":[]}})", "model.vocab.a");
  expect_error(R"({"model":{"type":"BPE","vocab":{"a":-3},"merges":[]}})", "model.vocab.a");
  expect_error(R"({"model":{"type":"BPE","vocab":{"a":2000000000},"merges":[]}})", "larger than");
  expect_error(R"({"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b", "ab"]}})",
               "model.merges[1]");
  expect_error(R"({"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":[["a","c"]]}})",
               "\"c\" is not in the vocab");
  expect_error(R"({"model":{"type":"BPE","vocab":{"a":0,"b":1},"merges":[["a","b"]]}})",
               "merged token \"ab\"");
  expect_error(R"({"model":{"type":"BPE","vocab":{"a":0},"merges":[[1,2]]}})", "model.merges[0]");
  expect_error(R"({"model":{"type":"WordPiece","vocab":{}}})", "unsupported model type \"WordPiece\"");
  expect_error(R"({"model":{"type":"BPE","dropout":0.1,"vocab":{}}})", "model.dropout");
  expect_error(R"({"normalizer":{"type":"NFKC"},"model":{"type":"BPE","vocab":{}}})",
               "unsupported normalizer \"NFKC\"");
  expect_error(R"({"decoder":{"type":"WordPiece"},"model":{"type":"BPE","vocab":{}}})",
               "decoder.type");
  expect_error(R"({"post_processor":{"type":"RobertaProcessing"},"model":{"type":"BPE","vocab":{}}})",
               "RobertaProcessing");
  expect_error(R"({"post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<x>"}},{"Sequence":{"id":"A"}}],"special_tokens":{}},"model":{"type":"BPE","vocab":{}}})",
               "<x>");
  expect_error(R"({"added_tokens":[{"id":1}],"model":{"type":"BPE","vocab":{}}})",
               "added_tokens[0].content: missing");
  expect_error(R"({"added_tokens":[{"id":1,"content":"a"},{"id":1,"content":"b"}],"model":{"type":"BPE","vocab":{}}})",
               "two added tokens have id 1");
  expect_error(R"({"pre_tokenizer":{"type":"Split","pattern":{"Regex":"[z-a]"},"behavior":"Isolated"},"model":{"type":"BPE","vocab":{}}})",
               "pre_tokenizer.pattern.Regex");
}

class TokenizerLoadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("moeserve_tokenizer_test_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name, std::ios::binary) << text;
  }
  std::filesystem::path dir_;
};

TEST_F(TokenizerLoadTest, MissingTokenizerJsonIsNotFound) {
  auto tok = Tokenizer::load(dir_.string());
  ASSERT_FALSE(tok.ok());
  EXPECT_EQ(tok.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(TokenizerLoadTest, ReadsTokenizerConfig) {
  write("tokenizer.json", fixture(kMergesPairs));
  write("tokenizer_config.json", R"({
    "add_bos_token": true, "add_eos_token": true,
    "bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": false, "normalized": true, "rstrip": false, "single_word": false},
    "eos_token": "</s>", "unk_token": null, "legacy": true,
    "tokenizer_class": "LlamaTokenizerFast",
    "chat_template": "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}"
  })");
  auto tok = Tokenizer::load(dir_.string());
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ(tok->bos_id(), 17);
  EXPECT_EQ(tok->eos_id(), 18);
  EXPECT_EQ(tok->chat_template(), "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}");
  // LlamaTokenizerFast rebuilds the template from add_bos_token / add_eos_token.
  EXPECT_EQ(tok->encode("hello"), (Ids{17, 11, 18}));
  EXPECT_EQ(tok->encode("hello", false), (Ids{11}));
}

TEST_F(TokenizerLoadTest, ChatTemplateFileAndBadConfig) {
  write("tokenizer.json", fixture(kMergesPairs));
  write("chat_template.jinja", "{{ messages }}");
  auto tok = Tokenizer::load(dir_.string());
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ(tok->chat_template(), "{{ messages }}");
  EXPECT_EQ(tok->encode("hello"), (Ids{17, 11}));  // template from tokenizer.json

  write("tokenizer_config.json", R"({"eos_token": "<nope>"})");
  auto bad = Tokenizer::load(dir_.string());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("tokenizer_config.json: eos_token"), std::string::npos)
      << bad.status();
}

}  // namespace
}  // namespace moeserve
