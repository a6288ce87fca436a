// The paged MLA cache: per layer, blocks of `block_size` token entries, each entry the
// normalised kv latent (kv_lora_rank values) followed by the roped k_pe (qk_rope_head_dim).
// Nothing else is cached (no per-head K/V). Block ids are handed out by the engine's block
// pool; this class only owns the memory. Thread-safety: the engine loop alone writes it.
#pragma once

#include <cstdint>
#include <memory>

#include "core/status.h"

namespace moeserve {

class LatentCache {
 public:
  static StatusOr<LatentCache> create(int64_t num_layers, int64_t num_blocks, int64_t block_size,
                                      int64_t entry_dim);
  // Bytes one block takes across all layers.
  static int64_t bytes_per_block(int64_t num_layers, int64_t block_size, int64_t entry_dim) {
    return num_layers * block_size * entry_dim * static_cast<int64_t>(sizeof(float));
  }

  int64_t num_layers() const { return num_layers_; }
  int64_t num_blocks() const { return num_blocks_; }
  int64_t block_size() const { return block_size_; }
  int64_t entry_dim() const { return entry_dim_; }
  int64_t block_stride() const { return block_size_ * entry_dim_; }

  float* layer_base(int64_t layer) const {
    return data_.get() + layer * num_blocks_ * block_stride();
  }
  float* entry(int64_t layer, int64_t block, int64_t offset) const {
    return layer_base(layer) + block * block_stride() + offset * entry_dim_;
  }

 private:
  std::shared_ptr<float> data_;
  int64_t num_layers_ = 0, num_blocks_ = 0, block_size_ = 0, entry_dim_ = 0;
};

}  // namespace moeserve
