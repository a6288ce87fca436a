// Tokenizer: a Hugging Face tokenizer.json byte-level BPE tokenizer (the DeepSeek-V2/V3,
// Llama-3, Qwen and GPT-2 family), plus the bits of tokenizer_config.json the server needs.
//
// Pipeline of encode(): added tokens are cut out of the raw text (AddedVocabulary), the rest is
// normalized (only identity normalizers are supported: null or an empty / identity Sequence),
// pre-tokenized (PreTokenizer) and run through the BPE model (BpeModel); with
// add_special_tokens the post-processor's template (TemplateProcessing, e.g. BOS + $A) wraps
// the ids. decode() maps ids back to tokens, drops special added tokens when asked, and inverts
// the ByteLevel decoder; byte sequences that are not valid UTF-8 come out as U+FFFD exactly as
// HF's from_utf8_lossy makes them.
//
// Anything a file can contain is handled without aborting: an unsupported component or a
// malformed field is an InvalidArgument naming the file and the JSON path. Input text may be
// any bytes; invalid UTF-8 is tokenized byte by byte and round-trips through decode as U+FFFD.
//
// Thread-safety: immutable after loading; every const method may be called concurrently (the
// BPE word cache inside is internally synchronized). Movable, not copyable.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "tokenizer/added_vocabulary.h"
#include "tokenizer/bpe.h"
#include "tokenizer/pretokenizer.h"

namespace moeserve {

class Tokenizer {
 public:
  // Parses tokenizer.json text; `source` names the file in error messages.
  static StatusOr<Tokenizer> from_json(std::string_view json,
                                       std::string_view source = "tokenizer.json");

  // Loads <model_dir>/tokenizer.json (NotFound when absent) and, when present,
  // <model_dir>/tokenizer_config.json: bos_token, eos_token (string or AddedToken object),
  // add_bos_token / add_eos_token, chat_template (string, or the "default" entry of a list;
  // else <model_dir>/chat_template.jinja) and tokenizer_class. For "LlamaTokenizerFast" the
  // post-processor is rebuilt from add_bos_token (default true) and add_eos_token (default
  // false), as transformers does, which is what vLLM serves DeepSeek models with.
  static StatusOr<Tokenizer> load(const std::string& model_dir);

  Tokenizer(Tokenizer&&) = default;
  Tokenizer& operator=(Tokenizer&&) = default;

  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;
  // Ids outside the vocabulary are skipped.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = true) const;

  // The raw bytes token `id` contributes to decode() output (before UTF-8 repair), or empty
  // for an unknown id. Also what OpenAI logprobs report as a token's "bytes". Precomputed.
  std::string_view token_bytes(int32_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= token_bytes_.size()) return {};
    return token_bytes_[static_cast<size_t>(id)];
  }
  // True when decode() joins tokens with single spaces (no decoder in tokenizer.json).
  bool joins_with_spaces() const { return decoder_ == Decoder::kNone; }

  // One past the largest token id (model vocab and added tokens together).
  int64_t vocab_size() const { return vocab_size_; }
  std::optional<int32_t> token_to_id(std::string_view token) const;
  // The token string of `id` (added token content or vocab entry); empty if unknown.
  std::string_view id_to_token(int32_t id) const;
  // True for added tokens marked "special" (those skip_special_tokens drops).
  bool is_special(int32_t id) const;

  // From tokenizer_config.json; bos_id falls back to the first special token of the
  // post-processor template when no config names one.
  std::optional<int32_t> bos_id() const { return bos_id_; }
  std::optional<int32_t> eos_id() const { return eos_id_; }
  const std::string& chat_template() const { return chat_template_; }
  const AddedVocabulary& added_tokens() const { return added_; }
  // Ids put before / after the text by the post-processor when add_special_tokens is true.
  const std::vector<int32_t>& template_prefix() const { return template_prefix_; }
  const std::vector<int32_t>& template_suffix() const { return template_suffix_; }

 private:
  enum class Decoder { kNone, kByteLevel };

  Tokenizer() = default;
  Status parse(const Json& root, const JsonFields& fields);
  Status parse_normalizer(const Json& value, const JsonFields& fields, const std::string& path);
  Status parse_post_processor(const Json& value, const JsonFields& fields, const std::string& path);
  Status parse_decoder(const Json& value, const JsonFields& fields, const std::string& path);
  Status apply_config(const Json& config, const JsonFields& fields);

  AddedVocabulary added_;
  PreTokenizer pre_tokenizer_;
  BpeModel model_;
  std::vector<int32_t> template_prefix_;
  std::vector<int32_t> template_suffix_;
  Decoder decoder_ = Decoder::kNone;
  int64_t vocab_size_ = 0;
  std::optional<int32_t> bos_id_;
  std::optional<int32_t> eos_id_;
  std::string chat_template_;
  std::vector<std::string> token_bytes_;  // [vocab_size_] decoded bytes of each id
};

}  // namespace moeserve
