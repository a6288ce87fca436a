#include "tokenizer/bpe_trainer.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "nlohmann/json.hpp"
#include "tokenizer/byte_level.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/utf8.h"

namespace moeserve {
namespace {

struct Word {
  std::vector<int32_t> symbols;
  int64_t count;
};

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

}  // namespace

StatusOr<BpeVocabulary> train_bytelevel_bpe(std::string_view corpus, int vocab_size,
                                            std::vector<std::string> special_tokens,
                                            int64_t min_frequency) {
  const auto num_specials = static_cast<int32_t>(special_tokens.size());
  if (vocab_size < num_specials + 256) {
    return absl::InvalidArgumentError(absl::StrCat(
        "train_bytelevel_bpe_json: vocab_size ", vocab_size, " is below 256 byte tokens + ",
        num_specials, " special tokens"));
  }
  absl::flat_hash_set<std::string> seen;
  for (const std::string& s : special_tokens) {
    if (s.empty()) return absl::InvalidArgumentError("train_bytelevel_bpe_json: empty special token");
    for (size_t pos = 0; pos < s.size(); pos += utf8_step(s, pos)) {
      if (utf8_valid_char_len(s, pos) == 0) {
        return absl::InvalidArgumentError("train_bytelevel_bpe_json: special token is not UTF-8");
      }
    }
    if (!seen.insert(s).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("train_bytelevel_bpe_json: special token \"", s, "\" given twice"));
    }
  }

  // id -> token text (byte-level chars); specials first (they are in the vocab too, as HF's
  // trainer puts them), then bytes.
  std::vector<std::string> tokens = special_tokens;
  absl::flat_hash_map<std::string, int32_t> token_ids;
  for (int b = 0; b < 256; ++b) {
    tokens.emplace_back(byte_level_char(static_cast<uint8_t>(b)));
  }
  for (int32_t i = 0; i < static_cast<int32_t>(tokens.size()); ++i) {
    if (!token_ids.emplace(tokens[static_cast<size_t>(i)], i).second) {
      return absl::InvalidArgumentError(absl::StrCat("train_bytelevel_bpe_json: special token \"",
                                                     tokens[static_cast<size_t>(i)],
                                                     "\" is also a byte token"));
    }
  }

  // Unique words of the corpus with their counts, as byte-token ids.
  MS_ASSIGN_OR_RETURN(PreTokenizer pre, PreTokenizer::gpt2_byte_level());
  std::vector<std::string> pieces;
  pre.split(corpus, &pieces);
  absl::flat_hash_map<std::string, int64_t> word_counts;
  for (std::string& p : pieces) ++word_counts[std::move(p)];
  std::vector<Word> words;
  words.reserve(word_counts.size());
  std::string bytes;
  for (const auto& [text, count] : word_counts) {
    bytes.clear();
    byte_level_decode_token(text, &bytes);  // always succeeds: text is byte-level output
    Word w{{}, count};
    for (char c : bytes) w.symbols.push_back(num_specials + static_cast<uint8_t>(c));
    words.push_back(std::move(w));
  }
  // Hash-map iteration order is not deterministic across builds; sort for reproducible ties.
  std::sort(words.begin(), words.end(),
            [](const Word& a, const Word& b) { return a.symbols < b.symbols; });

  std::vector<std::pair<int32_t, int32_t>> merges;
  absl::flat_hash_map<uint64_t, int64_t> pair_counts;
  while (static_cast<int>(tokens.size()) < vocab_size) {
    pair_counts.clear();
    for (const Word& w : words) {
      for (size_t i = 0; i + 1 < w.symbols.size(); ++i) {
        pair_counts[pair_key(w.symbols[i], w.symbols[i + 1])] += w.count;
      }
    }
    if (pair_counts.empty()) break;
    uint64_t best_key = 0;
    int64_t best_count = 0;
    for (const auto& [key, count] : pair_counts) {
      if (count > best_count || (count == best_count && key < best_key)) {
        best_key = key;
        best_count = count;
      }
    }
    if (best_count < min_frequency) break;
    const auto a = static_cast<int32_t>(best_key >> 32);
    const auto b = static_cast<int32_t>(best_key & 0xFFFFFFFFu);
    std::string merged = tokens[static_cast<size_t>(a)] + tokens[static_cast<size_t>(b)];
    int32_t new_id;
    auto it = token_ids.find(merged);
    if (it != token_ids.end()) {
      new_id = it->second;  // the same string reached by another merge path
    } else {
      new_id = static_cast<int32_t>(tokens.size());
      token_ids.emplace(merged, new_id);
      tokens.push_back(std::move(merged));
    }
    merges.emplace_back(a, b);
    for (Word& w : words) {
      std::vector<int32_t>& s = w.symbols;
      size_t out = 0;
      for (size_t i = 0; i < s.size(); ++i) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          s[out++] = new_id;
          ++i;
        } else {
          s[out++] = s[i];
        }
      }
      s.resize(out);
    }
  }

  BpeVocabulary out;
  out.merges.reserve(merges.size());
  for (const auto& [a, b] : merges) {
    out.merges.emplace_back(tokens[static_cast<size_t>(a)], tokens[static_cast<size_t>(b)]);
  }
  out.tokens = std::move(tokens);
  return out;
}

StatusOr<std::string> train_bytelevel_bpe_json(std::string_view corpus, int vocab_size,
                                               std::vector<std::string> special_tokens) {
  const auto num_specials = static_cast<int32_t>(special_tokens.size());
  MS_ASSIGN_OR_RETURN(BpeVocabulary trained,
                      train_bytelevel_bpe(corpus, vocab_size, special_tokens));
  const std::vector<std::string>& tokens = trained.tokens;
  using OJson = nlohmann::ordered_json;
  OJson added = OJson::array();
  for (int32_t i = 0; i < num_specials; ++i) {
    added.push_back({{"id", i},
                     {"content", special_tokens[static_cast<size_t>(i)]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  }
  OJson vocab = OJson::object();
  for (size_t i = 0; i < tokens.size(); ++i) vocab[tokens[i]] = static_cast<int32_t>(i);
  OJson merge_list = OJson::array();
  for (const auto& [a, b] : trained.merges) merge_list.push_back({a, b});
  const OJson byte_level = {{"type", "ByteLevel"},
                            {"add_prefix_space", false},
                            {"trim_offsets", true},
                            {"use_regex", true}};
  OJson post_processor = byte_level;
  if (num_specials > 0) {
    const std::string& bos = special_tokens[0];
    post_processor = {
        {"type", "TemplateProcessing"},
        {"single", {{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}},
                    {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"pair", {{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}},
                  {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                  {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
        {"special_tokens", {{bos, {{"id", bos}, {"ids", {0}}, {"tokens", {bos}}}}}}};
  }
  OJson root = {{"version", "1.0"},
                {"truncation", nullptr},
                {"padding", nullptr},
                {"added_tokens", added},
                {"normalizer", nullptr},
                {"pre_tokenizer", byte_level},
                {"post_processor", post_processor},
                {"decoder", byte_level},
                {"model",
                 {{"type", "BPE"},
                  {"dropout", nullptr},
                  {"unk_token", nullptr},
                  {"continuing_subword_prefix", nullptr},
                  {"end_of_word_suffix", nullptr},
                  {"fuse_unk", false},
                  {"byte_fallback", false},
                  {"ignore_merges", false},
                  {"vocab", vocab},
                  {"merges", merge_list}}}};
  return root.dump(1);
}

}  // namespace moeserve
