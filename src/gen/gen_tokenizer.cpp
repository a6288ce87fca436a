#include "gen/gen_tokenizer.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "nlohmann/json.hpp"

namespace moeserve {
namespace {

using OJson = nlohmann::ordered_json;

constexpr const char* kBos = "<｜begin▁of▁sentence｜>";
constexpr const char* kEos = "<｜end▁of▁sentence｜>";
constexpr const char* kUser = "<｜User｜>";
constexpr const char* kAssistant = "<｜Assistant｜>";

// The text merges are learned from. Fixed: the tokenizer is a pure function of vocab_size.
constexpr const char* kCorpus[] = {
    "The quick brown fox jumps over the lazy dog.",
    "A mixture of experts model routes every token to a few of its many experts.",
    "Each expert is a small feed forward network, and the router chooses which ones run.",
    "The server answers requests from many users at the same time, in batches.",
    "Attention reads the keys and values of every earlier token in the sequence.",
    "What is the capital of France? The capital of France is Paris.",
    "Please write a short story about a robot who learns to paint the sea.",
    "Once upon a time there was a little town at the edge of a large forest.",
    "The weather today is sunny with a light wind from the west, and it will rain tonight.",
    "She said that they would meet again on the first day of the next month.",
    "Numbers such as 1, 2, 3, 10, 42, 100 and 2024 appear in many documents.",
    "It is important to test the system with inputs that are both long and short.",
    "The model generates one token after another until it reaches the end of the answer.",
    "Hello! How are you doing today? I am doing well, thank you for asking.",
    "They walked through the garden, talking about books, music, and the history of science.",
    "In the morning the children went to school, and in the evening they played outside.",
    "This is a simple sentence. This is another simple sentence, with a comma.",
    "Engineers measure the throughput and the latency of the service under load.",
};

// GPT-2's byte-to-unicode map, UTF-8 encoded: printable Latin-1 bytes map to themselves,
// the rest to U+0100 + n in byte order.
std::vector<std::string> byte_level_alphabet() {
  std::vector<std::string> out(256);
  int next = 0;
  for (int b = 0; b < 256; ++b) {
    const bool self = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
    const int cp = self ? b : 256 + next++;
    std::string s;
    if (cp < 0x80) {
      s.push_back(static_cast<char>(cp));
    } else {  // < 0x800 for every code point used here
      s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
    out[b] = std::move(s);
  }
  return out;
}

enum class CharClass { kLetter, kDigit, kSpace, kOther };
CharClass classify(unsigned char ch) {
  if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')) return CharClass::kLetter;
  if (ch >= '0' && ch <= '9') return CharClass::kDigit;
  if (ch == ' ' || ch == '\n' || ch == '\t') return CharClass::kSpace;
  return CharClass::kOther;
}

// Splits ASCII text roughly as the GPT-2 regex does (" ?letters| ?digits| ?other+|spaces"),
// so learned merges stay within pre-tokenizer pieces.
std::vector<std::string> pre_tokenize(const std::string& text) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < text.size()) {
    size_t j = i;
    if (text[j] == ' ' && j + 1 < text.size() &&
        classify(static_cast<unsigned char>(text[j + 1])) != CharClass::kSpace) {
      ++j;
    }
    const CharClass cls = classify(static_cast<unsigned char>(text[j]));
    size_t k = j + 1;
    while (k < text.size() && classify(static_cast<unsigned char>(text[k])) == cls) ++k;
    out.push_back(text.substr(i, k - i));
    i = k;
  }
  return out;
}

// Byte-pair merges learned from kCorpus: most frequent adjacent pair first, ties broken by
// the lexicographically smaller pair; stops at `max_merges` or when no pair occurs twice.
std::vector<std::pair<std::string, std::string>> learn_merges(
    const std::vector<std::string>& alphabet, int64_t max_merges) {
  std::map<std::string, int64_t> word_counts;
  for (const char* line : kCorpus) {
    for (const std::string& piece : pre_tokenize(line)) ++word_counts[piece];
  }
  std::vector<std::pair<std::vector<std::string>, int64_t>> words;
  for (const auto& [piece, count] : word_counts) {
    std::vector<std::string> symbols;
    for (unsigned char ch : piece) symbols.push_back(alphabet[ch]);
    words.emplace_back(std::move(symbols), count);
  }
  std::vector<std::pair<std::string, std::string>> merges;
  while (static_cast<int64_t>(merges.size()) < max_merges) {
    std::map<std::pair<std::string, std::string>, int64_t> pair_counts;
    for (const auto& [symbols, count] : words) {
      for (size_t i = 0; i + 1 < symbols.size(); ++i) {
        pair_counts[{symbols[i], symbols[i + 1]}] += count;
      }
    }
    const std::pair<std::string, std::string>* best = nullptr;
    int64_t best_count = 1;
    for (const auto& [pair, count] : pair_counts) {
      if (count > best_count) {  // strict: the first (smallest) pair wins ties
        best = &pair;
        best_count = count;
      }
    }
    if (best == nullptr) break;
    const auto merge = *best;
    merges.push_back(merge);
    const std::string joined = merge.first + merge.second;
    for (auto& [symbols, count] : words) {
      std::vector<std::string> next;
      for (size_t i = 0; i < symbols.size(); ++i) {
        if (i + 1 < symbols.size() && symbols[i] == merge.first && symbols[i + 1] == merge.second) {
          next.push_back(joined);
          ++i;
        } else {
          next.push_back(symbols[i]);
        }
      }
      symbols = std::move(next);
    }
  }
  return merges;
}

OJson added_token(int64_t id, const char* content, bool special) {
  OJson t;
  t["id"] = id;
  t["content"] = content;
  t["single_word"] = false;
  t["lstrip"] = false;
  t["rstrip"] = false;
  t["normalized"] = true;
  t["special"] = special;
  return t;
}

OJson config_token(const char* content) {
  OJson t;
  t["__type"] = "AddedToken";
  t["content"] = content;
  t["lstrip"] = false;
  t["normalized"] = true;
  t["rstrip"] = false;
  t["single_word"] = false;
  return t;
}

Status write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) return absl::InternalError(absl::StrCat("cannot create ", path));
  f.write(text.data(), static_cast<std::streamsize>(text.size()));
  f.close();
  if (!f) return absl::InternalError(absl::StrCat("write failed: ", path));
  return absl::OkStatus();
}

}  // namespace

StatusOr<std::string> generated_tokenizer_json(int64_t vocab_size) {
  if (vocab_size < kGenTokenizerMinVocab) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "tokenizer: vocab_size %d is below the %d ids of the byte-level alphabet and the "
        "special tokens",
        vocab_size, kGenTokenizerMinVocab));
  }
  const std::vector<std::string> alphabet = byte_level_alphabet();
  const auto merges = learn_merges(alphabet, vocab_size - kGenTokenizerMinVocab);

  // ordered_json keeps ids in order but looks keys up linearly: append to its vector
  // directly and keep uniqueness in a set (vocabularies reach 10^5 entries).
  OJson vocab = OJson::object();
  auto& entries = vocab.get_ref<OJson::object_t&>();
  std::set<std::string> seen;
  int64_t next_id = 0;
  auto add = [&](std::string token) {
    if (!seen.insert(token).second) return;
    entries.emplace_back(std::move(token), next_id++);
  };
  for (const char* s : {kBos, kEos, kUser, kAssistant}) add(s);
  for (const std::string& s : alphabet) add(s);
  OJson merges_json = OJson::array();
  for (const auto& [a, b] : merges) {
    // Two merges can spell the same string ("a"+"bc", "ab"+"c"): one id serves both.
    add(a + b);
    merges_json.push_back(a + " " + b);
  }
  for (int64_t r = 0; next_id < vocab_size; ++r) add(absl::StrCat("<|reserved_", r, "|>"));

  OJson tok;
  tok["version"] = "1.0";
  tok["truncation"] = nullptr;
  tok["padding"] = nullptr;
  tok["added_tokens"] =
      OJson::array({added_token(0, kBos, true), added_token(1, kEos, true),
                    added_token(2, kUser, false), added_token(3, kAssistant, false)});
  tok["normalizer"] = nullptr;
  tok["pre_tokenizer"] = {{"type", "ByteLevel"},
                          {"add_prefix_space", false},
                          {"trim_offsets", true},
                          {"use_regex", true}};
  auto special = [](const char* id, int type_id) {
    return OJson{{"SpecialToken", {{"id", id}, {"type_id", type_id}}}};
  };
  auto sequence = [](const char* id, int type_id) {
    return OJson{{"Sequence", {{"id", id}, {"type_id", type_id}}}};
  };
  OJson post;
  post["type"] = "TemplateProcessing";
  post["single"] = OJson::array({special(kBos, 0), sequence("A", 0)});
  post["pair"] =
      OJson::array({special(kBos, 0), sequence("A", 0), special(kBos, 1), sequence("B", 1)});
  post["special_tokens"][kBos] = {
      {"id", kBos}, {"ids", OJson::array({0})}, {"tokens", OJson::array({kBos})}};
  tok["post_processor"] = std::move(post);
  tok["decoder"] = {{"type", "ByteLevel"},
                    {"add_prefix_space", true},
                    {"trim_offsets", true},
                    {"use_regex", true}};
  OJson model;
  model["type"] = "BPE";
  model["dropout"] = nullptr;
  model["unk_token"] = nullptr;
  model["continuing_subword_prefix"] = nullptr;
  model["end_of_word_suffix"] = nullptr;
  model["fuse_unk"] = false;
  model["byte_fallback"] = false;
  model["ignore_merges"] = false;
  model["vocab"] = std::move(vocab);
  model["merges"] = std::move(merges_json);
  tok["model"] = std::move(model);
  return tok.dump(1);
}

std::string generated_tokenizer_config_json(int64_t model_max_length) {
  // DeepSeek-V3's template, without tool calls: bos, system text, then the turns.
  const std::string chat_template =
      std::string(
          "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}"
          "{% endif %}{{ bos_token }}{% for message in messages %}"
          "{% if message['role'] == 'system' %}{{ message['content'] }}{% endif %}{% endfor %}"
          "{% for message in messages %}{% if message['role'] == 'user' %}{{ '") +
      kUser + "' + message['content'] }}{% elif message['role'] == 'assistant' %}{{ '" +
      kAssistant + "' + message['content'] + '" + kEos +
      "' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '" + kAssistant +
      "' }}{% endif %}";
  OJson c;
  c["add_bos_token"] = true;
  c["add_eos_token"] = false;
  c["bos_token"] = config_token(kBos);
  c["clean_up_tokenization_spaces"] = false;
  c["eos_token"] = config_token(kEos);
  c["legacy"] = true;
  c["model_max_length"] = model_max_length;
  c["pad_token"] = config_token(kEos);
  c["sp_model_kwargs"] = OJson::object();
  c["unk_token"] = nullptr;
  c["tokenizer_class"] = "LlamaTokenizerFast";
  c["chat_template"] = chat_template;
  return c.dump(2);
}

Status write_generated_tokenizer(const std::string& dir, int64_t vocab_size,
                                 int64_t model_max_length) {
  MS_ASSIGN_OR_RETURN(std::string tok, generated_tokenizer_json(vocab_size));
  MS_RETURN_IF_ERROR(write_file(dir + "/tokenizer.json", tok));
  return write_file(dir + "/tokenizer_config.json",
                    generated_tokenizer_config_json(model_max_length));
}

}  // namespace moeserve
