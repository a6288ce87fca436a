// PreTokenizer: the tokenizer.json "pre_tokenizer" stage, which cuts normalized text into the
// words that the BPE model tokenizes one at a time. Supported types (HF tokenizers semantics):
//   Split {pattern: {Regex|String}, behavior: Removed|Isolated|MergedWithPrevious|
//          MergedWithNext|Contiguous, invert}
//   ByteLevel {add_prefix_space, trim_offsets (offsets only; ignored), use_regex (GPT-2 regex)}
//   Sequence {pretokenizers: [...]}
// Any other type is an InvalidArgument naming it. Words come out in "model space": after a
// ByteLevel step every byte is replaced by its GPT-2 byte-level character.
// Thread-safety: immutable after construction; split() may run on many threads at once.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "tokenizer/tokenizer_json.h"

namespace moeserve {

// GPT-2's pre-tokenization regex, used by ByteLevel with use_regex.
inline constexpr std::string_view kGpt2SplitRegex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class PreTokenizerStep;

class PreTokenizer {
 public:
  // An empty pre-tokenizer: the whole text is one word.
  PreTokenizer() = default;

  // Parses the JSON value at `path` of the file `fields` describes; null means no
  // pre-tokenization.
  static StatusOr<PreTokenizer> from_json(const Json& value, const JsonFields& fields,
                                          std::string_view path);

  // ByteLevel {add_prefix_space: false, use_regex: true}: GPT-2's pre-tokenizer.
  static StatusOr<PreTokenizer> gpt2_byte_level();

  // Appends the words of `text` (bytes, possibly invalid UTF-8) to *out; empty words are
  // never produced.
  void split(std::string_view text, std::vector<std::string>* out) const;

  // True when a ByteLevel step maps bytes to byte-level characters.
  bool byte_level() const { return byte_level_; }

 private:
  Status add_from_json(const Json& value, const JsonFields& fields, const std::string& path);

  std::vector<std::shared_ptr<const PreTokenizerStep>> steps_;  // Sequences flattened
  bool byte_level_ = false;
};

}  // namespace moeserve
