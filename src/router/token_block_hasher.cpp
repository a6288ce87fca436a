#include "router/token_block_hasher.h"

namespace moeserve::router {
namespace {

void put_head(std::vector<uint8_t>& out, uint8_t major, uint64_t value) {
  const uint8_t m = static_cast<uint8_t>(major << 5);
  if (value < 24) {
    out.push_back(static_cast<uint8_t>(m | value));
    return;
  }
  int bytes = value <= 0xff ? 1 : value <= 0xffff ? 2 : value <= 0xffffffffULL ? 4 : 8;
  out.push_back(static_cast<uint8_t>(m | (bytes == 1   ? 24
                                          : bytes == 2 ? 25
                                          : bytes == 4 ? 26
                                                       : 27)));
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<uint8_t>(value >> (8 * i)));
}

}  // namespace

uint64_t fnv1a64(std::span<const uint8_t> bytes) {
  uint64_t h = 14695981039346656037ULL;
  for (uint8_t b : bytes) {
    h ^= b;
    h *= 1099511628211ULL;
  }
  return h;
}

std::vector<uint8_t> cbor_block_payload(uint64_t parent, const std::vector<uint32_t>* tokens,
                                        std::string_view extra) {
  std::vector<uint8_t> out;
  out.reserve(16 + (tokens ? tokens->size() * 5 : 0) + extra.size());
  put_head(out, 4, 3);
  put_head(out, 0, parent);
  if (tokens == nullptr) {
    out.push_back(0xf6);
  } else {
    put_head(out, 4, tokens->size());
    for (uint32_t t : *tokens) put_head(out, 0, t);
  }
  if (extra.empty()) {
    out.push_back(0xf6);
  } else {
    put_head(out, 3, extra.size());
    out.insert(out.end(), extra.begin(), extra.end());
  }
  return out;
}

TokenBlockHasher::TokenBlockHasher(int block_size, std::string_view hash_seed)
    : block_size_(block_size > 0 ? block_size : 16) {
  init_hash_ = fnv1a64(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(hash_seed.data()),
                                                hash_seed.size()));
}

uint64_t TokenBlockHasher::root(std::string_view model) const {
  return fnv1a64(cbor_block_payload(init_hash_, nullptr, model));
}

uint64_t TokenBlockHasher::block_key(uint64_t parent,
                                     const std::vector<uint32_t>& block_tokens) const {
  return fnv1a64(cbor_block_payload(parent, &block_tokens, {}));
}

std::vector<uint64_t> TokenBlockHasher::keys(uint64_t parent,
                                             std::span<const uint32_t> tokens) const {
  std::vector<uint64_t> out;
  const std::size_t bs = static_cast<std::size_t>(block_size_);
  out.reserve(tokens.size() / bs);
  std::vector<uint32_t> block;
  for (std::size_t start = 0; start + bs <= tokens.size(); start += bs) {
    block.assign(tokens.begin() + start, tokens.begin() + start + bs);
    parent = block_key(parent, block);
    out.push_back(parent);
  }
  return out;
}

}  // namespace moeserve::router
