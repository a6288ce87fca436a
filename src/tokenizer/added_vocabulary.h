// AddedVocabulary: tokenizer.json "added_tokens", cut out of the input text before
// pre-tokenization so that e.g. "<｜User｜>" becomes one id however the model would split it.
//
// Matching is leftmost-longest over all added tokens (a byte trie), non-overlapping, left to
// right. single_word tokens only match when not touching an ASCII word character (letter,
// digit, '_') on either side; lstrip / rstrip tokens absorb the ASCII whitespace before / after
// them. Tokens marked "normalized" are matched on the raw text too, which is exact for the
// identity normalizers this tokenizer supports.
// Thread-safety: immutable after construction.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "core/status.h"
#include "tokenizer/tokenizer_json.h"

namespace moeserve {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
  bool special = false;
};

class AddedVocabulary {
 public:
  AddedVocabulary() = default;

  // Parses the "added_tokens" array at `path`; null or absent means none.
  static StatusOr<AddedVocabulary> from_json(const Json* value, const JsonFields& fields,
                                             std::string_view path);
  static StatusOr<AddedVocabulary> from_tokens(std::vector<AddedToken> tokens);

  // A piece of the input: either an added token's id (id >= 0) or text to pre-tokenize.
  struct Piece {
    std::string_view text;
    int32_t id = -1;
  };
  // Appends the pieces of `text` in order; text pieces are never empty.
  void split(std::string_view text, std::vector<Piece>* out) const;

  const std::vector<AddedToken>& tokens() const { return tokens_; }
  // The token with this id, or nullptr.
  const AddedToken* find(int32_t id) const;
  std::optional<int32_t> token_to_id(std::string_view content) const;
  bool empty() const { return tokens_.empty(); }

 private:
  struct TrieNode {
    absl::flat_hash_map<uint8_t, int32_t> children;
    int32_t token = -1;  // index into tokens_ of the token ending here
  };
  // Longest token starting at `pos`: index into tokens_, or -1; its length in *len.
  int32_t longest_at(std::string_view text, size_t pos, size_t* len) const;

  std::vector<AddedToken> tokens_;
  absl::flat_hash_map<int32_t, size_t> by_id_;
  absl::flat_hash_map<std::string, int32_t> by_content_;
  std::vector<TrieNode> trie_;  // trie_[0] is the root
  std::array<bool, 256> first_byte_{};
};

}  // namespace moeserve
