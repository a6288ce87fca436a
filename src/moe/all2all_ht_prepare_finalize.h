// Expert-parallel PrepareFinalize for throughput (prefill; vLLM's DeepEP high-throughput
// role), standard format. Dispatch: ranks first exchange how many tokens each sends to each
// (all-to-all of counts), then variable-size token-major buffers: each token travels once to
// every rank holding any of its experts, as a record [x (H floats) | K local expert ids
// (-1 padding) | K weights]. The receiver permutes the records so each local expert's rows
// are contiguous. Combine: per received record the receiver weights and sums its experts'
// rows (one partial per (token, rank)) and sends them back; the owner sums the partials of
// each token in rank order.
// Collective: every rank calls prepare/finalize in lockstep, also with no tokens.
// Threading: one thread drives it and its ProcessGroup.
#pragma once

#include <memory>
#include <vector>

#include "comm/process_group.h"
#include "moe/ep_placement.h"
#include "moe/local_prepare_finalize.h"

namespace moeserve {

class All2AllHtPrepareFinalize final : public PrepareFinalize {
 public:
  // `group` must outlive this object.
  static StatusOr<std::unique_ptr<All2AllHtPrepareFinalize>> create(ProcessGroup* group,
                                                                    int64_t num_experts);

  ActivationFormat format() const override { return ActivationFormat::kStandard; }
  const char* name() const override { return "all2all_ht"; }
  int64_t num_local_experts() const { return placement_.num_local_experts(group_->rank()); }
  Status prepare(const RoutedTokens& in, ExpertBatch* batch) override;
  Status finalize(const ExpertBatch& batch, const float* expert_out, float* y) override;
  Status finalize_begin(const ExpertBatch& batch, const float* expert_out) override;
  Status finalize_end(float* y) override;

 private:
  All2AllHtPrepareFinalize(ProcessGroup* group, ContiguousPlacement placement);
  // Per-record local permutation: expert map over local ids plus one padding id (-1).
  static std::vector<int32_t> padded_local_map(int64_t num_local);

  ProcessGroup* group_;
  ContiguousPlacement placement_;
  int64_t num_local_;
  LocalPrepareFinalize local_;
  OpBatch combine_ops_;
  int64_t hidden_ = 0, top_k_ = 0, num_tokens_ = 0;
  std::vector<int64_t> send_counts_, recv_counts_;  // [N] records
  std::vector<std::vector<int32_t>> sent_tokens_;   // [N][send_counts] token index
  std::vector<uint8_t> send_buf_, recv_buf_;        // records, grouped by rank
  std::vector<float> rx_, rweights_;                // [R, H], [R, K]
  std::vector<int32_t> rids_;                       // [R, K]
  std::vector<float> partial_;                      // [R, H]
  std::vector<float> returned_;                     // [Σ send_counts, H]
};

}  // namespace moeserve
