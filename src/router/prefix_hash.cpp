#include "router/prefix_hash.h"

#include <string>

#include "xxhash.h"

namespace moeserve::router {

std::vector<uint64_t> chained_prefix_hashes(std::string_view model, std::string_view cache_salt,
                                            std::string_view text, std::size_t block_chars,
                                            std::size_t max_blocks) {
  std::vector<uint64_t> out;
  if (block_chars == 0 || text.empty()) return out;
  std::string seed_input;
  seed_input.reserve(model.size() + cache_salt.size());
  seed_input.append(model).append(cache_salt);
  uint64_t prev = XXH64(seed_input.data(), seed_input.size(), 0);
  std::size_t num_blocks = (text.size() + block_chars - 1) / block_chars;
  if (max_blocks > 0 && num_blocks > max_blocks) num_blocks = max_blocks;
  out.reserve(num_blocks);
  std::string buf;
  for (std::size_t i = 0; i < num_blocks; ++i) {
    std::string_view block = text.substr(i * block_chars, block_chars);
    buf.assign(block.data(), block.size());
    for (int b = 0; b < 8; ++b) buf.push_back(static_cast<char>((prev >> (8 * b)) & 0xff));
    prev = XXH64(buf.data(), buf.size(), 0);
    out.push_back(prev);
  }
  return out;
}

}  // namespace moeserve::router
