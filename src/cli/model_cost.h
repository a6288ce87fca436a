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

// Expected number of distinct routed experts a MoE layer touches when `batch` tokens each pick
// top-k of E uniformly at random: E * (1 - (1 - k/E)^batch).
double expected_experts_touched(const ModelConfig& c, int64_t batch);

// Bytes one decode step of `batch` sequences (each at context `context`) must read: every
// attention and dense weight once, the gate, the shared experts and the expected distinct
// routed experts of each MoE layer, the LM head, `batch` embedding rows, and every
// sequence's latent cache.
// FLOPs of decoding one token at context `context`: 2 per multiply-add of every weight it
// uses (attention, dense or top-k + shared experts, gate, LM head) plus MLA's absorbed
// attention over the cached latents (scores and weighted sum, both kv_lora + rope wide).
double decode_token_flops(const ModelConfig& c, int64_t context);

double decode_step_bytes(const ModelConfig& c, int64_t batch, int64_t context,
                         double weight_bytes);

}  // namespace moeserve
