// Chained character-block hashes for the approximate prefix index (llm-d approximateprefix
// hashing.go): seed = xxh64(model + cache_salt), h_i = xxh64(block_i bytes || LE64(h_{i-1})).
// Blocks are `block_chars` characters; a trailing partial block is hashed too. Pure function.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace moeserve::router {

std::vector<uint64_t> chained_prefix_hashes(std::string_view model, std::string_view cache_salt,
                                            std::string_view text, std::size_t block_chars,
                                            std::size_t max_blocks);

}  // namespace moeserve::router
