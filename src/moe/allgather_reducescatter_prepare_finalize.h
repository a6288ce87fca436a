// Expert-parallel PrepareFinalize, the simple dense baseline (vLLM's
// "allgather_reducescatter"): dispatch all-gathers every rank's tokens with their top-k ids and
// weights (variable counts per rank); each rank runs its local experts over every gathered
// token routed to them (standard format); combine weights and reduces locally into partial
// outputs for all gathered tokens and reduce-scatters them back: the owning rank sums the
// partials of its own tokens, in rank order.
// Collective: every rank of the group calls prepare/finalize in lockstep (a rank with no
// tokens still calls them). Threading: one thread drives it and its ProcessGroup.
#pragma once

#include <memory>
#include <vector>

#include "comm/process_group.h"
#include "moe/ep_placement.h"
#include "moe/local_prepare_finalize.h"

namespace moeserve {

class AllGatherReduceScatterPrepareFinalize final : public PrepareFinalize {
 public:
  // `group` must outlive this object.
  static StatusOr<std::unique_ptr<AllGatherReduceScatterPrepareFinalize>> create(
      ProcessGroup* group, int64_t num_experts);

  ActivationFormat format() const override { return ActivationFormat::kStandard; }
  const char* name() const override { return "allgather_reducescatter"; }
  int64_t num_local_experts() const { return placement_.num_local_experts(group_->rank()); }
  Status prepare(const RoutedTokens& in, ExpertBatch* batch) override;
  Status finalize(const ExpertBatch& batch, const float* expert_out, float* y) override;
  Status finalize_begin(const ExpertBatch& batch, const float* expert_out) override;
  Status finalize_end(float* y) override;

 private:
  AllGatherReduceScatterPrepareFinalize(ProcessGroup* group, ContiguousPlacement placement);

  ProcessGroup* group_;
  ContiguousPlacement placement_;
  LocalPrepareFinalize local_;  // permutes the gathered tokens for the local experts
  OpBatch combine_ops_;
  std::vector<int64_t> counts_;  // [N] tokens per rank (this forward)
  int64_t hidden_ = 0;
  std::vector<float> gathered_x_;        // [ΣT, H]
  std::vector<int32_t> gathered_ids_;    // [ΣT, K]
  std::vector<float> gathered_weights_;  // [ΣT, K]
  std::vector<float> partial_;           // [ΣT, H] weighted local contributions
  std::vector<float> received_;          // [N, T, H] partials for this rank's tokens
};

}  // namespace moeserve
