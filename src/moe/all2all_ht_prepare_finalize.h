// Expert-parallel PrepareFinalize for throughput (prefill; vLLM's DeepEP high-throughput
// role), standard format. Dispatch: ranks first exchange how many tokens each sends to each
// (all-to-all of counts), then variable-size token-major buffers: each token travels once to
// every other rank holding any of its experts, as a record [x (H floats) | K local expert ids
// (-1 padding) | K weights]. Tokens routed to this rank's own experts are read from the
// caller's x directly (never packed or exchanged). The receiver copies each record's x
// straight into its experts' rows, so each local expert's rows are contiguous, in (source
// rank, token, k) order. Combine: per received record the receiver weights and sums its
// experts' rows (one partial per (token, rank), k in order) and sends them back; the owner
// sums the partials of each token in rank order, computing its own rank's partial (the same
// sum) in finalize_end rather than storing it.
// Collective: every rank calls prepare/finalize in lockstep, also with no tokens.
// Threading: one thread drives it and its ProcessGroup.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "comm/process_group.h"
#include "moe/ep_placement.h"
#include "moe/local_prepare_finalize.h"
#include "moe/modular_kernel.h"

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
  // Writes record j's partial into p [H]: 0 + w_k * expert_out row, summed over the
  // record's local experts in k order.
  void record_partial(int64_t j, const float* expert_out, float* p) const;

  ProcessGroup* group_;
  ContiguousPlacement placement_;
  int64_t num_local_;
  OpBatch combine_ops_;
  int64_t hidden_ = 0, top_k_ = 0, num_tokens_ = 0;
  std::vector<int64_t> send_counts_, recv_counts_;  // [N] records (own tokens included)
  std::vector<std::vector<int32_t>> sent_tokens_;   // [N][send_counts] token index
  // Per token its destinations in rank order: (rank, index in sent_tokens_[rank]).
  std::vector<int64_t> dest_begin_;                 // [T + 1]
  std::vector<std::pair<int32_t, int32_t>> dests_;  // [dest_begin_[T]]
  std::vector<int64_t> seen_;                       // [N] scratch: last token that chose rank
  std::vector<uint8_t> send_buf_, recv_buf_;        // peers' records, grouped by rank
  // Received records j in [0, R) in rank order: this rank's own occupy [self_begin_, self_end_).
  int64_t self_begin_ = 0, self_end_ = 0, peer_records_ = 0;
  std::vector<const float*> rx_;  // [R] x row of record j
  std::vector<int64_t> rslot_;    // [R, K] row in batch->a1, or -1
  std::vector<float> rweights_;   // [R, K]
  // Peers' records' partials, in record order (this rank's own are summed in finalize_end).
  std::vector<float> partial_;         // [R - own, H]
  const float* expert_out_ = nullptr;  // between finalize_begin and finalize_end
  std::vector<float> returned_;        // [Σ peers' send_counts, H]
  std::vector<int64_t> returned_off_;  // [N] first row of rank r's partials
};

}  // namespace moeserve
