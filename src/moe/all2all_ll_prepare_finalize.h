// Expert-parallel PrepareFinalize for latency (decode; vLLM's DeepEP low-latency / pplx role),
// batched format with static shapes. Each rank owns two registered buffers:
//   dispatch: rows   [E_loc, S, H] f32, S = max_tokens_per_rank * N slots per local expert;
//                    sender s writes its rows for expert e at slots [s*M, s*M + count)
//             index  [E_loc, S] i32   the sender's (token * K + k) for each row
//             counts [N, E_loc] i32   rows sender s wrote per expert
//             flags  [N] u64          sender s's sequence number, written last
//   combine:  rows   [M * K, H] f32   expert output for (token, k), written by the owner
//             flags  [N] u64
// Dispatch packs rows per (destination, expert) and writes them with one-sided puts straight
// to their slots — no count round-trip: the counts travel with the payload, then the flag
// (ordered after the data by a fence). The receiver waits for every sender's flag and packs
// each expert's rows to the front of its slab for the batched experts. Combine puts each
// output row back into the sender's combine buffer at (token, k), then a flag; the sender
// weights and sums. A sequence number per round tells fresh flags from old ones; buffers are
// reused safely because a rank only starts round i+1 after every peer finished reading
// round i's data (each round's combine waits on every peer).
// Chunking: at most max_tokens_per_rank tokens per prepare(); num_chunks() agrees across
// ranks on the number of rounds (an all-reduce of the token counts).
// Collective: every rank calls create/prepare/finalize in lockstep, also with no tokens.
// Threading: one thread drives it and its ProcessGroup.
#pragma once

#include <memory>
#include <vector>

#include "comm/registered_buffer.h"
#include "moe/ep_placement.h"
#include "moe/modular_kernel.h"

namespace moeserve {

struct LowLatencyConfig {
  int64_t num_experts = 0;            // E; divisible by the group size
  int64_t hidden = 0;                 // H
  int64_t top_k = 0;                  // K
  int64_t max_tokens_per_rank = 256;  // M (vLLM's VLLM_MOE_DP_CHUNK_SIZE)
};

class All2AllLlPrepareFinalize final : public PrepareFinalize {
 public:
  // Collective (registers the buffers with every peer). `group` must outlive this object.
  static StatusOr<std::unique_ptr<All2AllLlPrepareFinalize>> create(ProcessGroup* group,
                                                                    const LowLatencyConfig& c);

  ActivationFormat format() const override { return ActivationFormat::kBatched; }
  const char* name() const override { return "all2all_ll"; }
  int64_t num_local_experts() const { return num_local_; }
  int64_t max_tokens_per_chunk() const override { return cfg_.max_tokens_per_rank; }
  StatusOr<int64_t> num_chunks(int64_t num_tokens) override;
  Status prepare(const RoutedTokens& in, ExpertBatch* batch) override;
  Status finalize(const ExpertBatch& batch, const float* expert_out, float* y) override;
  Status finalize_begin(const ExpertBatch& batch, const float* expert_out) override;
  Status finalize_end(float* y) override;

 private:
  All2AllLlPrepareFinalize(ProcessGroup* group, const LowLatencyConfig& c,
                           ContiguousPlacement placement);
  size_t rows_off(int64_t e, int64_t slot) const;
  size_t index_off(int64_t e, int64_t slot) const;
  size_t counts_off(int sender) const;
  size_t dispatch_flag_off(int sender) const;
  size_t combine_flag_off(int sender) const;
  Status wait_all_flags(RegisteredBuffer* buf, size_t (All2AllLlPrepareFinalize::*off)(int) const,
                        const char* what);

  ProcessGroup* group_;
  LowLatencyConfig cfg_;
  ContiguousPlacement placement_;
  int world_, rank_;
  int64_t num_local_, slots_;  // E_loc, S = M * N
  std::unique_ptr<RegisteredBuffer> dispatch_, combine_;
  uint64_t seq_ = 0;
  int64_t num_tokens_ = 0;
  // Sender side, valid until finalize_end: packed rows, their (t*K+k) index, counts.
  std::vector<float> send_rows_;      // [T*K, H], grouped by (rank, local expert)
  std::vector<int32_t> send_index_;   // [T*K]
  std::vector<int32_t> send_counts_;  // [N, E_loc]
  std::vector<float> weights_;        // [T, K]
  // Receiver side: for packed row (e, j), the sender and its (t*K+k).
  std::vector<int32_t> row_sender_, row_index_;  // [E_loc * S]
  const ExpertBatch* pending_ = nullptr;
};

}  // namespace moeserve
