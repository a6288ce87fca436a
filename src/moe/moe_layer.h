// One sparse MoE block: gate -> prepare -> experts -> finalize, plus the shared experts.
// y = Σ_k w_k · expert_k(x) + shared(x).
// Thread-safety: forward() from one thread at a time (the engine loop).
#pragma once

#include <functional>
#include <memory>
#include <optional>

#include "kernels/linear.h"
#include "moe/expert_weights.h"
#include "moe/gate.h"
#include "moe/gated_mlp.h"
#include "moe/modular_kernel.h"

namespace moeserve {

// Per-call statistics, for load balancing and tests.
struct MoeRouting {
  std::vector<int32_t> topk_ids;    // [T, K]
  std::vector<float> topk_weights;  // [T, K]
};

class MoeLayer {
 public:
  // gate_weight: [E, H]; bias: [E] f32 or undefined; shared may be empty.
  // `prepare_finalize` may be shared by several layers (of one model): layers run one after
  // another, and a backend holds state only between one layer's prepare and finalize.
  static StatusOr<MoeLayer> create(GateParams gate, Tensor gate_weight, Tensor bias,
                                   std::optional<GatedMlp> shared,
                                   std::shared_ptr<PrepareFinalize> prepare_finalize,
                                   std::unique_ptr<Experts> experts);
  MoeLayer(MoeLayer&&) = default;
  MoeLayer& operator=(MoeLayer&&) = default;

  // Adds a second kernel for small steps (e.g. all2all_ll beside all2all_ht, vLLM's
  // DeepEP low-latency mode for decode): a forward call whose `max_tokens_across_ranks` is at
  // most `max_tokens` runs it, larger ones run the main kernel. The choice must be the same
  // on every rank of an expert-parallel group, hence the agreed count.
  Status set_low_latency_kernel(std::shared_ptr<PrepareFinalize> prepare_finalize,
                                std::unique_ptr<Experts> experts, int64_t max_tokens);
  bool has_low_latency_kernel() const { return ll_pf_ != nullptr; }

  // x: [T, H] -> y: [T, H] (overwritten). `routing` (may be null) receives the gate output.
  // `max_tokens_across_ranks`: the largest T of this call over every rank of the group
  // (required, >= 0, when a low-latency kernel is set; ignored otherwise).
  // `replay` (may be null): expert choices and weights to use instead of the gate's ([T, K],
  // ids in [0, E)). Tests use it to compare two precision paths without the gate's
  // discontinuity: a rounding-sized difference can flip a near-tied top-k choice.
  // `scratch` (may be null: heap) is the model's step arena; the layer's temporaries (gate
  // logits, expert choices, shared-expert output, the experts' intermediates) come from it
  // and are released on return.
  Status forward(const float* x, int64_t num_tokens, float* y, MoeRouting* routing = nullptr,
                 int64_t max_tokens_across_ranks = -1, const MoeRouting* replay = nullptr,
                 Arena* scratch = nullptr);

  // Expert load statistics (moe/expert_load.h): every forward adds one to counters[e] per
  // token routed to logical expert e ([E], owned by the caller, null: no counting).
  void set_load_counters(int64_t* counters) { load_counters_ = counters; }

  const GateParams& gate_params() const { return gate_; }
  const char* prepare_finalize_name() const { return pf_->name(); }
  const char* experts_name() const { return experts_->name(); }
  // The backend the last forward() ran ("" before the first).
  const char* last_prepare_finalize_name() const { return last_pf_name_; }

 private:
  MoeLayer() = default;
  GateParams gate_;
  Linear gate_linear_;
  std::vector<float> bias_;  // [E] or empty
  std::optional<GatedMlp> shared_;
  std::shared_ptr<PrepareFinalize> pf_;
  std::unique_ptr<Experts> experts_;
  std::shared_ptr<PrepareFinalize> ll_pf_;  // optional low-latency kernel
  std::unique_ptr<Experts> ll_experts_;
  int64_t ll_max_tokens_ = 0;
  const char* last_pf_name_ = "";
  int64_t* load_counters_ = nullptr;  // [E] or null, not owned
  ExpertBatch batch_;              // reused across calls
  std::vector<float> expert_out_;  // reused across calls
};

// Runs prepare -> experts -> finalize for routed tokens, in as many chunks as the backend
// asks for (collective for expert-parallel backends). `overlap` (may be empty) runs once,
// between finalize_begin and finalize_end of the last chunk, i.e. while the combine is in
// flight. y: [T, H] (overwritten). `batch` and `expert_out` are reusable scratch.
// `max_tokens_across_ranks`: the group's largest T when already agreed (see num_chunks).
// `scratch` (may be null): the experts' temporaries (Experts::apply).
Status run_modular_kernel(PrepareFinalize& pf, const Experts& experts, const RoutedTokens& in,
                          ExpertBatch* batch, std::vector<float>* expert_out, float* y,
                          const std::function<void()>& overlap = {},
                          int64_t max_tokens_across_ranks = -1, Arena* scratch = nullptr);

// Builds the single-rank kernel: LocalPrepareFinalize + grouped (standard) or batched experts.
StatusOr<MoeLayer> make_local_moe_layer(GateParams gate, Tensor gate_weight, Tensor bias,
                                        std::optional<GatedMlp> shared,
                                        std::shared_ptr<const ExpertWeights> experts,
                                        ActivationFormat format);

}  // namespace moeserve
