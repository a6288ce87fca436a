// The MoE router ("gate") exactly as DeepSeek-V2/V3 define it: softmax or sigmoid scores;
// the e_score_correction_bias only influences which experts are chosen; greedy,
// group-limited greedy (group score = max) or noaux_tc (group score = sum of the top-2 biased
// scores) selection; renormalisation when norm_topk_prob; then routed_scaling_factor.
// Ties go to the lower expert (and group) index. Pure function; thread-safe.
#pragma once

#include <cstdint>

#include "core/status.h"

namespace moeserve {

enum class GateScoring { kSoftmax, kSigmoid };
enum class GateTopk { kGreedy, kGroupLimitedGreedy, kNoauxTc };

struct GateParams {
  int64_t num_experts = 0;  // E
  int64_t top_k = 0;        // K
  int64_t num_groups = 1;
  int64_t topk_groups = 1;
  GateScoring scoring = GateScoring::kSoftmax;
  GateTopk method = GateTopk::kGreedy;
  bool renormalize = false;
  float routed_scaling_factor = 1.0f;

  Status validate() const;
};

// logits: [T, E] router logits (f32). bias: [E] or null (noaux_tc needs it).
// topk_ids: [T, K] global expert ids, topk_weights: [T, K].
void select_experts(const GateParams& p, const float* logits, const float* bias, int64_t num_tokens,
                    int32_t* topk_ids, float* topk_weights);

}  // namespace moeserve
