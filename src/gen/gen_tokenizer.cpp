#include "gen/gen_tokenizer.h"

#include <algorithm>
#include <fstream>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "tokenizer/bpe_trainer.h"

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
  // The trainer's layout is this one's: the four specials, the 256 bytes, then the merges, of
  // pairs seen at least twice (so that the fillers, not one-off words, take the spare ids).
  std::string corpus;
  for (const char* line : kCorpus) absl::StrAppend(&corpus, line, "\n");
  MS_ASSIGN_OR_RETURN(BpeVocabulary trained,
                      train_bytelevel_bpe(corpus, static_cast<int>(vocab_size),
                                          {kBos, kEos, kUser, kAssistant}, /*min_frequency=*/2));

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
  for (std::string& t : trained.tokens) add(std::move(t));
  OJson merges_json = OJson::array();
  for (const auto& [a, b] : trained.merges) merges_json.push_back(a + " " + b);
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
