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
  static StatusOr<MoeLayer> create(GateParams gate, Tensor gate_weight, Tensor bias,
                                   std::optional<GatedMlp> shared,
                                   std::unique_ptr<PrepareFinalize> prepare_finalize,
                                   std::unique_ptr<Experts> experts);
  MoeLayer(MoeLayer&&) = default;
  MoeLayer& operator=(MoeLayer&&) = default;

  // x: [T, H] -> y: [T, H] (overwritten). `routing` (may be null) receives the gate output.
  Status forward(const float* x, int64_t num_tokens, float* y, MoeRouting* routing = nullptr);

  const GateParams& gate_params() const { return gate_; }
  const char* prepare_finalize_name() const { return pf_->name(); }
  const char* experts_name() const { return experts_->name(); }

 private:
  MoeLayer() = default;
  GateParams gate_;
  Linear gate_linear_;
  std::vector<float> bias_;  // [E] or empty
  std::optional<GatedMlp> shared_;
  std::unique_ptr<PrepareFinalize> pf_;
  std::unique_ptr<Experts> experts_;
  ExpertBatch batch_;              // reused across calls
  std::vector<float> expert_out_;  // reused across calls
};

// Runs prepare -> experts -> finalize for routed tokens, in as many chunks as the backend
// asks for (collective for expert-parallel backends). `overlap` (may be empty) runs once,
// between finalize_begin and finalize_end of the last chunk, i.e. while the combine is in
// flight. y: [T, H] (overwritten). `batch` and `expert_out` are reusable scratch.
Status run_modular_kernel(PrepareFinalize& pf, const Experts& experts, const RoutedTokens& in,
                          ExpertBatch* batch, std::vector<float>* expert_out, float* y,
                          const std::function<void()>& overlap = {});

// Builds the single-rank kernel: LocalPrepareFinalize + grouped (standard) or batched experts.
StatusOr<MoeLayer> make_local_moe_layer(GateParams gate, Tensor gate_weight, Tensor bias,
                                        std::optional<GatedMlp> shared,
                                        std::shared_ptr<const ExpertWeights> experts,
                                        ActivationFormat format);

}  // namespace moeserve
