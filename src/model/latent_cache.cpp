#include "model/latent_cache.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "core/tensor.h"

namespace moeserve {

StatusOr<LatentCache> LatentCache::create(int64_t num_layers, int64_t num_blocks,
                                          int64_t block_size, int64_t entry_dim) {
  if (num_layers <= 0 || num_blocks <= 0 || block_size <= 0 || entry_dim <= 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "KV cache: invalid geometry (%d layers, %d blocks of %d tokens, %d values per entry)",
        num_layers, num_blocks, block_size, entry_dim));
  }
  LatentCache c;
  c.num_layers_ = num_layers;
  c.num_blocks_ = num_blocks;
  c.block_size_ = block_size;
  c.entry_dim_ = entry_dim;
  const size_t bytes = static_cast<size_t>(num_layers * num_blocks) *
                       static_cast<size_t>(block_size * entry_dim) * sizeof(float);
  void* p = nullptr;
  try {
    p = aligned_alloc64(bytes);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrFormat("KV cache: cannot allocate %d bytes; lower --kv-cache-memory", bytes));
  }
  std::memset(p, 0, bytes);
  c.data_ = std::shared_ptr<float>(static_cast<float*>(p), [](float* q) { std::free(q); });
  return c;
}

}  // namespace moeserve
