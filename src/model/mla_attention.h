// DeepSeek Multi-head Latent Attention for one layer. The cache keeps only the normalised kv
// latent and the roped k_pe per token. Chunks of several tokens (prefill) use the full
// multi-head form: the context's latents are up-projected through kv_b_proj. Single-token
// chunks (decode) use the absorbed form: q_nope is folded into latent space through W_UK,
// attention runs over the latents directly, and W_UV maps the result back per head.
// Thread-safety: forward() from the engine loop only.
#pragma once

#include <optional>
#include <vector>

#include "core/arena.h"
#include "kernels/linear.h"
#include "kernels/rope.h"
#include "model/config.h"
#include "model/forward_batch.h"
#include "model/latent_cache.h"
#include "model/step_plan.h"
#include "model/weight_loader.h"

namespace moeserve {

class MlaAttention {
 public:
  static StatusOr<MlaAttention> load(const WeightLoader& w, const ModelConfig& cfg, int64_t layer,
                                     const RopeTable* rope);
  // x: [T, H] normalised hidden states of the batch -> out: [T, H] (overwritten).
  // Writes the chunk tokens' cache entries of `layer`, then attends. `plan` is the step's
  // plan of `batch` (positions, cache slots, the prefill/decode split); every temporary comes
  // from `scratch` and is released on return.
  void forward(const float* x, const ForwardBatch& batch, const StepPlan& plan,
               const LatentCache& cache, int64_t layer, Arena& scratch, float* out) const;

 private:
  void write_cache(const float* entries, const StepPlan& plan, const LatentCache& cache,
                   int64_t layer) const;
  void prefill_chunk(const float* q, const SeqChunk& s, const StepPlan& plan,
                     const StepPlan::Prefill& chunk, const LatentCache& cache, int64_t layer,
                     Arena& scratch, float* attn) const;
  void decode_tokens(const float* q, const ForwardBatch& batch, const StepPlan& plan,
                     const LatentCache& cache, int64_t layer, Arena& scratch, float* attn) const;

  int64_t hidden_ = 0, heads_ = 0, nope_ = 0, rope_dim_ = 0, v_dim_ = 0, latent_ = 0;
  float eps_ = 1e-6f;
  float scale_ = 1.0f;
  const RopeTable* rope_ = nullptr;
  std::optional<Linear> q_proj_;  // [heads*dqk, H] when q_lora_rank is null
  Linear q_a_proj_;               // [q_lora, H]
  Tensor q_a_norm_;               // [q_lora] f32
  Linear q_b_proj_;               // [heads*dqk, q_lora]
  Linear kv_a_proj_;              // [L + R, H]
  Tensor kv_a_norm_;              // [L] f32
  Linear kv_b_proj_;              // [heads*(nope+v), L]
  Linear o_proj_;                 // [H, heads*v]
  std::vector<Linear> w_uk_t_;    // per head [L, nope]: q_lat = q_nope · W_UK
  std::vector<Linear> w_uv_;      // per head [v, L] (views of kv_b_proj)
};

}  // namespace moeserve
