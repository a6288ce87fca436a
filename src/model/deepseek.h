// DeepSeek-V2 / V3 (DeepseekV2ForCausalLM, DeepseekV3ForCausalLM) on the CPU: embedding,
// per layer RMSNorm -> MLA -> RMSNorm -> dense MLP or MoE (gate, routed + shared experts),
// final norm, LM head. One forward call runs many sequences of different lengths.
// Thread-safety: load() is thread-safe; forward() is called by one thread (the engine loop).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "kernels/linear.h"
#include "kernels/rope.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/forward_batch.h"
#include "model/latent_cache.h"
#include "model/mla_attention.h"
#include "moe/gated_mlp.h"
#include "moe/moe_layer.h"

namespace moeserve {

struct ModelLoadOptions {
  ActivationFormat experts_format = ActivationFormat::kStandard;
  // Called with (tensors loaded, total) while loading; may be empty.
  std::function<void(size_t, size_t)> progress;
};

class DeepseekModel {
 public:
  static StatusOr<std::unique_ptr<DeepseekModel>> load(const std::string& dir,
                                                       const ModelLoadOptions& opts = {});
  const ModelConfig& config() const { return cfg_; }
  // Values one cached token takes in one layer: kv_lora_rank + qk_rope_head_dim.
  int64_t cache_entry_dim() const { return cfg_.kv_lora_rank + cfg_.qk_rope_head_dim; }
  // The dtype the linear weights are computed from (fp8 checkpoints are held as bf16).
  DType weight_dtype() const { return lm_head_.weight().dtype(); }

  // Runs the batch; writes logits [batch.num_logit_rows(), vocab] (in chunk order) to `logits`.
  // `routing` (optional) receives each MoE layer's top-k ids, indexed by layer.
  Status forward(const ForwardBatch& batch, const LatentCache& cache, std::vector<float>* logits,
                 std::vector<MoeRouting>* routing = nullptr);

 private:
  struct Layer {
    Tensor input_norm;  // [H] f32
    Tensor post_norm;   // [H] f32
    std::unique_ptr<MlaAttention> attn;
    std::optional<GatedMlp> dense;
    std::optional<MoeLayer> moe;
  };
  Status validate_batch(const ForwardBatch& batch, const LatentCache& cache) const;
  void embed(const ForwardBatch& batch, float* h) const;

  ModelConfig cfg_;
  std::shared_ptr<Checkpoint> ckpt_;  // keeps the mmaps alive
  std::unique_ptr<RopeTable> rope_;
  Tensor embed_;       // [vocab, H]
  Tensor final_norm_;  // [H] f32
  Linear lm_head_;     // [vocab, H]
  std::vector<Layer> layers_;
};

}  // namespace moeserve
