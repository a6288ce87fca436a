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

#include "core/arena.h"
#include "kernels/linear.h"
#include "kernels/rope.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/forward_batch.h"
#include "model/latent_cache.h"
#include "model/mla_attention.h"
#include "model/step_plan.h"
#include "moe/ep_backend.h"
#include "moe/expert_load.h"
#include "moe/gated_mlp.h"
#include "moe/moe_layer.h"

namespace moeserve {

// Expert parallelism (vLLM's --enable-expert-parallel with --data-parallel-size N): rank r of
// the group's N ranks holds only the routed experts [r*E/N, (r+1)*E/N) and loads everything
// else (attention, dense MLPs, shared experts, gates, embedding, LM head) fully, for
// data-parallel attention.
struct ExpertParallelOptions {
  ProcessGroup* group = nullptr;  // required; must outlive the model (and its engine)
  // The dispatch/combine backend (see moe/ep_backend.h; parse_all2all_backend reads names).
  All2AllBackend all2all_backend = All2AllBackend::kAllGatherReduceScatter;
  // all2all_ll's static per-rank token capacity per dispatch round (vLLM's
  // VLLM_MOE_DP_CHUNK_SIZE); with auto, steps where every rank has at most this many tokens
  // use all2all_ll.
  int64_t max_tokens_per_rank = 256;
};

struct ModelLoadOptions {
  // Unset: grouped (standard) without expert parallelism, else the backend's own format.
  std::optional<ActivationFormat> experts_format;
  // Unset, or a group of one rank: every expert on this process.
  std::optional<ExpertParallelOptions> expert_parallel;
  // Called with (tensors loaded, total) while loading; may be empty.
  std::function<void(size_t, size_t)> progress;
};

class DeepseekModel {
 public:
  // With expert parallelism, load() is collective: every rank of the group calls it with the
  // same directory and options.
  static StatusOr<std::unique_ptr<DeepseekModel>> load(const std::string& dir,
                                                       const ModelLoadOptions& opts = {});
  const ModelConfig& config() const { return cfg_; }
  // Values one cached token takes in one layer: kv_lora_rank + qk_rope_head_dim.
  int64_t cache_entry_dim() const { return cfg_.kv_lora_rank + cfg_.qk_rope_head_dim; }
  // The dtype the linear weights are computed from (fp8 checkpoints are held as bf16).
  DType weight_dtype() const { return lm_head_.weight().dtype(); }

  // Runs the batch; writes logits [batch.num_logit_rows(), vocab] (in chunk order) to `logits`.
  // `routing` (optional) receives each MoE layer's top-k ids, indexed by layer. `replay`
  // (optional, indexed by layer like `routing`; dense layers' entries ignored) makes each MoE
  // layer use the given expert choices instead of its gate's (see MoeLayer::forward): tests
  // compare precision paths with it.
  //
  // Expert parallel: forward() is collective. Every rank calls it once per step, in lockstep,
  // and every call runs every MoE layer's prepare/finalize: a rank with nothing to do passes
  // an empty batch (no sequences; a dummy batch) and gets no logits. A batch that fails
  // validation on one rank still runs the layers' exchanges with no tokens before the error
  // is returned, so the peers do not wait. With the auto backend, batch.max_tokens_across_dp
  // (when >= 0) is the agreed per-rank maximum; otherwise forward() all-reduces it itself.
  Status forward(const ForwardBatch& batch, const LatentCache& cache, std::vector<float>* logits,
                 std::vector<MoeRouting>* routing = nullptr,
                 const std::vector<MoeRouting>* replay = nullptr);

  // The expert-parallel group, or null without expert parallelism.
  ProcessGroup* ep_group() const { return ep_ ? ep_->group() : nullptr; }
  // Global id of this rank's first routed expert and how many it holds.
  int64_t first_local_expert() const { return first_local_expert_; }
  int64_t num_local_experts() const { return num_local_experts_; }
  // The PrepareFinalize the last forward() ran in its MoE layers ("" if none ran yet).
  std::string last_moe_backend() const;

  // Model layer index of each MoE layer, in order.
  std::vector<int> moe_layer_ids() const;
  // Load statistics (moe/expert_load.h): the i-th MoE layer counts its routed tokens into
  // window->step_counters(i). Null stops counting. The window must outlive the counting.
  void set_expert_load_counters(ExpertLoadWindow* window);

 private:
  struct Layer {
    Tensor input_norm;  // [H] f32
    Tensor post_norm;   // [H] f32
    std::unique_ptr<MlaAttention> attn;
    std::optional<GatedMlp> dense;
    std::optional<MoeLayer> moe;
  };
  Status validate_batch(const ForwardBatch& batch, const LatentCache& cache) const;
  Status validate_replay(const ForwardBatch& batch, const std::vector<MoeRouting>& replay) const;
  Status run_layers(const ForwardBatch& batch, const StepPlan& plan, const LatentCache& cache,
                    std::vector<float>* logits, std::vector<MoeRouting>* routing,
                    const std::vector<MoeRouting>* replay);
  void embed(const ForwardBatch& batch, float* h) const;

  ModelConfig cfg_;
  std::shared_ptr<Checkpoint> ckpt_;  // keeps the mmaps alive
  std::unique_ptr<RopeTable> rope_;
  Tensor embed_;       // [vocab, H]
  Tensor final_norm_;  // [H] f32
  Linear lm_head_;     // [vocab, H]
  std::vector<Layer> layers_;
  std::optional<EpKernels> ep_;  // expert parallelism: the backends every MoE layer shares
  Arena arena_;  // per-step scratch of forward(): reset each step, grown to its high water
  int64_t first_local_expert_ = 0, num_local_experts_ = 0;
};

}  // namespace moeserve
