// Analytic cost of the DeepSeek forward pass, for benchmarks: matmul FLOPs of a prefill and
// bytes a batch-1 decode step must read (weights it touches + the cached latents).
#pragma once

#include <cstdint>

#include "model/config.h"

namespace moeserve {

// FLOPs (2 per multiply-add) of prefilling `prompt_len` tokens in one chunk with logits for
// the last token only: every projection, the routed top-k and shared experts, the gate, the
// causal attention, and one LM-head row.
double prefill_flops(const ModelConfig& c, int64_t prompt_len);

// Bytes one decode step reads at context length `context` (tokens already cached), with
// weights of `weight_bytes` bytes per value (2 for bf16): every attention and dense weight,
// the gate, top-k routed experts and the shared experts of each MoE layer, the LM head, one
// embedding row, and the f32 latent cache of every layer.
double decode_bytes(const ModelConfig& c, int64_t context, double weight_bytes);

}  // namespace moeserve
