// Token-block keys of the precise prefix index, as llm-d-kv-cache computes them since its
// #202 (kvblock/token_processor.go): key = FNV-64a(canonical CBOR [parent, tokens, extra]).
// The chain root is FNV-64a(hashSeed) hashed once more with the model name as `extra` and no
// tokens (CBOR null), so keys differ per model. Only full blocks are keyed. Pure functions.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace moeserve::router {

uint64_t fnv1a64(std::span<const uint8_t> bytes);

// Canonical CBOR of [parent, tokens, extra]; `extra` is a text string, or null when empty.
// tokens == nullptr encodes a CBOR null in the tokens slot (Go's nil slice).
std::vector<uint8_t> cbor_block_payload(uint64_t parent, const std::vector<uint32_t>* tokens,
                                        std::string_view extra);

class TokenBlockHasher final {
 public:
  TokenBlockHasher(int block_size, std::string_view hash_seed);

  int block_size() const { return block_size_; }
  uint64_t root(std::string_view model) const;
  uint64_t block_key(uint64_t parent, const std::vector<uint32_t>& block_tokens) const;
  // Keys of every full block of `tokens`, chained from `parent`.
  std::vector<uint64_t> keys(uint64_t parent, std::span<const uint32_t> tokens) const;

 private:
  int block_size_;
  uint64_t init_hash_;
};

}  // namespace moeserve::router
