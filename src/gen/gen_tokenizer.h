// A small, self-contained byte-level BPE tokenizer for generated models: tokenizer.json in
// Hugging Face `tokenizers` format and tokenizer_config.json with DeepSeek's special tokens
// and a simplified DeepSeek-V3 chat template.
//
// Id layout (vocab_size ids in all, every one in model.vocab):
//   0 "<｜begin▁of▁sentence｜>" (bos), 1 "<｜end▁of▁sentence｜>" (eos), 2 "<｜User｜>",
//   3 "<｜Assistant｜>" — also listed in added_tokens (0/1 special, 2/3 not, as DeepSeek-V3);
//   4..259 the 256 bytes in byte order, spelled with the GPT-2 byte-to-unicode map;
//   then merges of pairs seen at least twice in a fixed English text, learned by the BPE
//   trainer (tokenizer/bpe_trainer.h; deterministic);
//   then "<|reserved_N|>" fillers so the count equals vocab_size exactly. The fillers are
//   plain vocab entries no merge produces: they never come out of encoding and decode to
//   their literal text (so random models' output stays visible).
// Pre-tokenizer ByteLevel (use_regex true), decoder ByteLevel, TemplateProcessing with bos.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"

namespace moeserve {

inline constexpr int64_t kGenTokenizerMinVocab = 260;

// tokenizer.json text. Requires vocab_size >= kGenTokenizerMinVocab.
StatusOr<std::string> generated_tokenizer_json(int64_t vocab_size);
// tokenizer_config.json text.
std::string generated_tokenizer_config_json(int64_t model_max_length);
// Writes both files into `dir`.
Status write_generated_tokenizer(const std::string& dir, int64_t vocab_size,
                                 int64_t model_max_length);

}  // namespace moeserve
