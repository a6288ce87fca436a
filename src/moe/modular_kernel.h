// The modular MoE kernel (vLLM's design): PrepareFinalize moves activations to the experts
// and back (permute locally, or dispatch/combine across ranks); Experts runs the expert MLPs
// over what prepare produced, in one of two activation formats. Any format-compatible pair
// computes the same output.
//
// Glossary: T tokens on this rank, H hidden, K top-k, E global experts, E_loc local experts.
// Thread-safety: objects are used by one thread (the engine loop) at a time; prepare and
// finalize of one forward must be called in order on the same object.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/arena.h"
#include "core/status.h"

namespace moeserve {

enum class ActivationFormat {
  kStandard,  // a1 [M, H]; local expert e owns rows [expert_offsets[e], expert_offsets[e+1])
  kBatched,   // a1 [E_loc, max_tokens, H]; expert e's first expert_num_tokens[e] rows valid
};

// What prepare() hands the experts. Buffers are owned here and reused across calls.
struct ExpertBatch {
  ActivationFormat format = ActivationFormat::kStandard;
  int64_t hidden = 0;
  int64_t num_local_experts = 0;
  int64_t max_tokens_per_expert = 0;       // batched only
  std::vector<float> a1;                   // activations, layout per format
  std::vector<int64_t> expert_offsets;     // standard: [E_loc + 1]
  std::vector<int32_t> expert_num_tokens;  // [E_loc]

  int64_t rows() const {
    return format == ActivationFormat::kStandard
               ? (expert_offsets.empty() ? 0 : expert_offsets.back())
               : num_local_experts * max_tokens_per_expert;
  }
  // First row of local expert e in a1 (and in the experts' output).
  int64_t row_begin(int64_t e) const {
    return format == ActivationFormat::kStandard ? expert_offsets[e] : e * max_tokens_per_expert;
  }
};

// Routing of this rank's tokens, from the gate.
struct RoutedTokens {
  const float* x = nullptr;             // [T, H]
  int64_t num_tokens = 0;               // T
  int64_t hidden = 0;                   // H
  const int32_t* topk_ids = nullptr;    // [T, K] global expert ids
  const float* topk_weights = nullptr;  // [T, K]
  int64_t top_k = 0;                    // K
};

class PrepareFinalize {
 public:
  virtual ~PrepareFinalize() = default;
  virtual ActivationFormat format() const = 0;
  virtual const char* name() const = 0;
  // Moves each (token, k) to the rank and slot of its expert.
  virtual Status prepare(const RoutedTokens& in, ExpertBatch* batch) = 0;
  // Brings the experts' rows (same layout as batch.a1, H columns) back, applies the top-k
  // weights and reduces into y [T, H] (overwritten).
  virtual Status finalize(const ExpertBatch& batch, const float* expert_out, float* y) = 0;

  // finalize() split in two so the caller can overlap other work (the shared experts) with
  // the combine: finalize_begin starts it (posts sends / puts), finalize_end completes it
  // into y [T, H]. `batch` and `expert_out` must stay valid until finalize_end returns.
  // Default: begin only records its arguments and end runs finalize(); expert-parallel
  // backends override both.
  virtual Status finalize_begin(const ExpertBatch& batch, const float* expert_out) {
    pending_batch_ = &batch;
    pending_out_ = expert_out;
    return absl::OkStatus();
  }
  virtual Status finalize_end(float* y) {
    if (pending_batch_ == nullptr) return absl::InternalError("finalize_end without begin");
    const ExpertBatch* b = pending_batch_;
    pending_batch_ = nullptr;
    return finalize(*b, pending_out_, y);
  }

  // Chunking (vLLM's VLLM_MOE_DP_CHUNK_SIZE): a backend with static per-rank buffers takes at
  // most max_tokens_per_chunk() tokens per prepare() (0: no limit). num_chunks(T) says how
  // many prepare/experts/finalize rounds a forward of T local tokens runs; every rank of an
  // expert-parallel group must run the same number (ranks with fewer chunks run empty ones).
  // `max_tokens_across_ranks` is the largest T over the group when the caller already agreed
  // on it (data-parallel lockstep), else -1 and such backends agree collectively. Default:
  // one round.
  virtual int64_t max_tokens_per_chunk() const { return 0; }
  virtual StatusOr<int64_t> num_chunks(int64_t /*num_tokens*/,
                                       int64_t /*max_tokens_across_ranks*/ = -1) {
    return int64_t{1};
  }

 private:
  const ExpertBatch* pending_batch_ = nullptr;
  const float* pending_out_ = nullptr;
};

class Experts {
 public:
  virtual ~Experts() = default;
  virtual ActivationFormat format() const = 0;
  virtual const char* name() const = 0;
  // out: rows() x H, same row layout as batch.a1; rows that are padding are left untouched.
  // Temporaries come from `scratch` (the model's step arena; null: allocated per call).
  virtual void apply(const ExpertBatch& batch, float* out, Arena* scratch) const = 0;
};

}  // namespace moeserve
