// A small byte-level BPE trainer, for generated test/demo models (`moeserve gen-model`): learns
// merges on a corpus; train_bytelevel_bpe_json also writes a complete tokenizer.json that
// Tokenizer loads, and generators with their own tokenizer.json layout (gen/gen_tokenizer.h)
// use the learned vocabulary and merges directly.
//
// Layout of the produced vocabulary (stable ids, independent of the corpus):
//   ids [0, S)            the special tokens, in the order given (S = special_tokens.size());
//                         added_tokens with special: true; the first one is the BOS that the
//                         TemplateProcessing post-processor prepends;
//   ids [S, S + 256)      one token per byte value b (id S + b), as GPT-2 byte-level chars;
//   ids [S + 256, ...)    merged tokens in the order learned, up to vocab_size in total.
// Pre-tokenizer ByteLevel (GPT-2 regex, no prefix space), decoder ByteLevel, BPE model with
// merges in the [["a","b"], ...] spelling. Training is the classic greedy loop: count adjacent
// pairs over the unique words (weighted by frequency), merge the most frequent (ties: the
// smallest (left id, right id)), repeat; O(words x merges), fine for vocabularies of a few
// thousand. The vocabulary stops short of vocab_size if the corpus runs out of pairs.
// Thread-safety: a pure function.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace moeserve {

// What training learned, in the vocabulary layout above.
struct BpeVocabulary {
  std::vector<std::string> tokens;  // id -> token text (byte-level characters), size <= vocab_size
  std::vector<std::pair<std::string, std::string>> merges;  // in the order learned
};

// Merging stops early when the most frequent pair occurs fewer than `min_frequency` times (as
// in HF's BpeTrainer). InvalidArgument when vocab_size < special_tokens.size() + 256, or a
// special token is empty, not UTF-8, repeated, or spelled like a byte token.
StatusOr<BpeVocabulary> train_bytelevel_bpe(std::string_view corpus, int vocab_size,
                                            std::vector<std::string> special_tokens,
                                            int64_t min_frequency = 0);

// train_bytelevel_bpe, written as tokenizer.json. Same errors.
StatusOr<std::string> train_bytelevel_bpe_json(std::string_view corpus, int vocab_size,
                                               std::vector<std::string> special_tokens);

}  // namespace moeserve
