#include "moe/gate.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/parallel.h"

namespace moeserve {

Status GateParams::validate() const {
  if (num_experts <= 0 || top_k <= 0 || top_k > num_experts) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "gate: num_experts_per_tok (%d) must be in [1, n_routed_experts (%d)]", top_k,
        num_experts));
  }
  if (num_groups <= 0 || num_experts % num_groups != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "gate: n_routed_experts (%d) is not divisible by n_group (%d)", num_experts, num_groups));
  }
  if (topk_groups <= 0 || topk_groups > num_groups) {
    return absl::InvalidArgumentError(
        absl::StrFormat("gate: topk_group (%d) must be in [1, n_group (%d)]", topk_groups,
                        num_groups));
  }
  if (method != GateTopk::kGreedy && top_k > topk_groups * (num_experts / num_groups)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "gate: num_experts_per_tok (%d) exceeds the experts in topk_group (%d) groups", top_k,
        topk_groups));
  }
  return absl::OkStatus();
}

namespace {

// Indices of the k largest values (ties: lower index first), in descending order.
void top_k_indices(const float* v, int64_t n, int64_t k, int32_t* out, std::vector<int32_t>& idx) {
  idx.resize(n);
  for (int64_t i = 0; i < n; ++i) idx[i] = static_cast<int32_t>(i);
  auto better = [v](int32_t a, int32_t b) { return v[a] > v[b] || (v[a] == v[b] && a < b); };
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), better);
  std::copy(idx.begin(), idx.begin() + k, out);
}

void route_one(const GateParams& p, const float* logits, const float* bias, int32_t* ids,
               float* weights, std::vector<float>& scores, std::vector<float>& choice,
               std::vector<int32_t>& scratch) {
  const int64_t E = p.num_experts;
  scores.resize(E);
  if (p.scoring == GateScoring::kSoftmax) {
    float mx = -std::numeric_limits<float>::infinity();
    for (int64_t e = 0; e < E; ++e) mx = std::max(mx, logits[e]);
    double sum = 0;
    for (int64_t e = 0; e < E; ++e) sum += (scores[e] = std::exp(logits[e] - mx));
    const float inv = static_cast<float>(1.0 / sum);
    for (int64_t e = 0; e < E; ++e) scores[e] *= inv;
  } else {
    for (int64_t e = 0; e < E; ++e) scores[e] = 1.0f / (1.0f + std::exp(-logits[e]));
  }
  choice.assign(scores.begin(), scores.end());
  if (p.method == GateTopk::kNoauxTc && bias) {
    for (int64_t e = 0; e < E; ++e) choice[e] += bias[e];
  }
  if (p.method != GateTopk::kGreedy && p.num_groups > 1) {
    const int64_t G = p.num_groups, per = E / G;
    std::vector<float> group_score(G);
    for (int64_t g = 0; g < G; ++g) {
      const float* c = choice.data() + g * per;
      if (p.method == GateTopk::kNoauxTc) {
        // Sum of the two largest biased scores of the group.
        float a = -std::numeric_limits<float>::infinity(), b = a;
        for (int64_t i = 0; i < per; ++i) {
          if (c[i] > a) {
            b = a;
            a = c[i];
          } else if (c[i] > b) {
            b = c[i];
          }
        }
        group_score[g] = per >= 2 ? a + b : a;
      } else {
        group_score[g] = *std::max_element(c, c + per);
      }
    }
    std::vector<int32_t> keep(p.topk_groups);
    top_k_indices(group_score.data(), G, p.topk_groups, keep.data(), scratch);
    std::vector<char> kept(G, 0);
    for (int32_t g : keep) kept[g] = 1;
    for (int64_t g = 0; g < G; ++g) {
      if (kept[g]) continue;
      std::fill(choice.begin() + g * per, choice.begin() + (g + 1) * per,
                -std::numeric_limits<float>::infinity());
    }
  }
  top_k_indices(choice.data(), E, p.top_k, ids, scratch);
  double sum = 0;
  for (int64_t k = 0; k < p.top_k; ++k) sum += (weights[k] = scores[ids[k]]);
  const double norm = (p.renormalize && p.top_k > 1) ? 1.0 / (sum + 1e-20) : 1.0;
  for (int64_t k = 0; k < p.top_k; ++k) {
    weights[k] = static_cast<float>(weights[k] * norm * p.routed_scaling_factor);
  }
}

}  // namespace

void select_experts(const GateParams& p, const float* logits, const float* bias, int64_t num_tokens,
                    int32_t* topk_ids, float* topk_weights) {
  parallel_for(
      num_tokens,
      [&](int64_t b, int64_t e) {
        std::vector<float> scores, choice;
        std::vector<int32_t> scratch;
        for (int64_t t = b; t < e; ++t) {
          route_one(p, logits + t * p.num_experts, bias, topk_ids + t * p.top_k,
                    topk_weights + t * p.top_k, scores, choice, scratch);
        }
      },
      16);
}

}  // namespace moeserve
