// The metadata of one forward step that every layer reads: computed once per step from the
// ForwardBatch (FlashInfer's plan/run split, ggml's graph plan/compute), never per layer.
// Plain data; built by DeepseekModel::forward and passed down to each layer.
#pragma once

#include <cstdint>
#include <vector>

#include "model/forward_batch.h"

namespace moeserve {

struct StepPlan {
  // Builds the plan of a validated batch (DeepseekModel::validate_batch) for a latent cache
  // with blocks of `block_size` tokens.
  static StepPlan build(const ForwardBatch& batch, int64_t block_size);

  int64_t num_tokens = 0;          // T
  std::vector<int32_t> positions;  // [T] position of each row in its sequence
  // [T] cache slot of each row's new entry: block id * block_size + offset in the block
  // (a slot indexes one layer's cache as LatentCache::layer_base(l) + slot * entry_dim).
  std::vector<int64_t> slots;

  // Multi-token chunks (full multi-head form), with the slots of their whole context.
  struct Prefill {
    int32_t seq = 0;            // index into ForwardBatch::seqs
    int64_t context_begin = 0;  // into context_slots
    int64_t num_context = 0;    // S = num_computed + num_tokens
  };
  std::vector<Prefill> prefills;
  std::vector<int64_t> context_slots;  // flat, per prefill chunk: slots of positions [0, S)
  int64_t max_context = 0;             // largest S of a prefill chunk (0: none)

  // Single-token chunks (absorbed form), in row order.
  std::vector<int32_t> decode_seqs;  // indices into ForwardBatch::seqs
  std::vector<int64_t> decode_rows;  // their rows in the batch

  // Rows whose logits are produced: the last row of each chunk that asks for them.
  std::vector<int64_t> logit_rows;
};

}  // namespace moeserve
