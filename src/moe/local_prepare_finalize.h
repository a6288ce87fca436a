// PrepareFinalize for one rank holding every expert it routes to: prepare permutes the
// (token, k) pairs so each local expert's rows are together (standard format) or in its own
// padded slab (batched format); finalize un-permutes, weights and reduces.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/functional/function_ref.h"
#include "moe/modular_kernel.h"

namespace moeserve {

// The permutation every prepare ends with. `slot` has one entry per (row, k) pair, i = row * K
// + k: on entry the pair's local expert, or -1 for none; on return the pair's row in
// batch->a1, or -1. Each expert's rows are in pair order (deterministic). Fills the batch
// (format, hidden, counts, offsets or max_tokens_per_expert, a1), copying pair i's H floats
// from row_of(i / K).
void permute_to_experts(ActivationFormat format, int64_t num_local_experts, int64_t hidden,
                        int64_t top_k, std::vector<int64_t>& slot,
                        absl::FunctionRef<const float*(int64_t)> row_of, ExpertBatch* batch);

class LocalPrepareFinalize final : public PrepareFinalize {
 public:
  // expert_map: global expert id -> local id, or -1 when the expert is not on this rank
  // (such pairs contribute nothing). Size E.
  LocalPrepareFinalize(ActivationFormat format, std::vector<int32_t> expert_map,
                       int64_t num_local_experts);
  ActivationFormat format() const override { return format_; }
  const char* name() const override { return "local"; }
  Status prepare(const RoutedTokens& in, ExpertBatch* batch) override;
  Status finalize(const ExpertBatch& batch, const float* expert_out, float* y) override;

 private:
  ActivationFormat format_;
  std::vector<int32_t> expert_map_;
  int64_t num_local_;
  // Per (token, k): row in the expert batch, or -1. Valid between prepare and finalize.
  std::vector<int64_t> slot_;
  std::vector<float> weights_;  // [T, K]
  int64_t num_tokens_ = 0, top_k_ = 0, hidden_ = 0;
};

}  // namespace moeserve
