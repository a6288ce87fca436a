// Expert-parallel PrepareFinalize for latency (decode; vLLM's DeepEP low-latency / pplx role),
// batched format with static shapes. Each rank owns two registered buffers, R = M * K rows
// per sender (M = max_tokens_per_rank, K = top_k: the most rows one rank can route anywhere):
//   dispatch: rows   [N, R, H] f32   sender s writes the rows it routes to this rank at
//                                    [s*R, s*R + n_s), grouped by local expert
//             meta   [N, E_loc + 1] i32  rows per local expert from sender s, then where s's
//                                    rows for this rank start in s's own send order
//             flags  [N] u64         sender s's sequence number, written last
//   combine:  rows   [R, H] f32      expert outputs, in this rank's own send order
//             flags  [N] u64
// Dispatch packs the rows per destination rank (by local expert) and writes them to the
// peer's fixed per-sender slot with one one-sided put, then the meta, then the flag (ordered
// after the data by a fence) — no count round-trip: the counts travel with the payload. The
// receiver waits for every sender's flag and copies each expert's rows (sender by sender) into
// its slab of the batched format [E_loc, N*M, H]. Combine gathers, per sender, the outputs of
// that sender's rows back into the sender's order and writes them with one put to where they
// came from in the sender's send order, then a flag; the sender weights and sums. So a round
// is three puts per peer for the dispatch and two for the combine, whatever the token count.
// A sequence number per round tells fresh flags from old ones; buffers are reused safely
// because a rank only starts round i+1 after every peer finished reading round i's data (each
// round's combine waits on every peer).
// Chunking: at most max_tokens_per_rank tokens per prepare(); num_chunks() agrees across
// ranks on the number of rounds (from the caller's agreed maximum when it has one, else an
// all-reduce of the token counts).
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
  StatusOr<int64_t> num_chunks(int64_t num_tokens, int64_t max_tokens_across_ranks) override;
  Status prepare(const RoutedTokens& in, ExpertBatch* batch) override;
  Status finalize(const ExpertBatch& batch, const float* expert_out, float* y) override;
  Status finalize_begin(const ExpertBatch& batch, const float* expert_out) override;
  Status finalize_end(float* y) override;

 private:
  All2AllLlPrepareFinalize(ProcessGroup* group, const LowLatencyConfig& c,
                           ContiguousPlacement placement);
  int64_t rows_per_sender() const { return cfg_.max_tokens_per_rank * cfg_.top_k; }  // R
  size_t rows_off(int sender) const;
  size_t meta_off(int sender) const;
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
  // Sender side, valid until finalize_end (puts read from them).
  std::vector<float> send_rows_;      // [T*K, H], grouped by (rank, local expert)
  std::vector<int32_t> send_pos_;     // [T*K] packed position of row (t*K+k)
  std::vector<int32_t> send_meta_;    // [N, E_loc + 1] counts per local expert, then start
  std::vector<float> weights_;        // [T, K]
  // Receiver side, from prepare to finalize_begin: where each local expert's rows start among
  // sender s's rows (prefix sums of its counts; the last entry is its total), where sender s's
  // rows start in its own send order, and the combine's staging rows.
  std::vector<int64_t> recv_offsets_;  // [N, E_loc + 1]
  std::vector<int32_t> recv_start_;    // [N]
  std::vector<float> stage_;          // [sum of n_s, H] outputs in each sender's order
  const ExpertBatch* pending_ = nullptr;
};

}  // namespace moeserve
