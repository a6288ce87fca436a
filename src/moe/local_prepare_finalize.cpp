#include "moe/local_prepare_finalize.h"

#include <algorithm>
#include <cstring>

#include "core/parallel.h"

namespace moeserve {

LocalPrepareFinalize::LocalPrepareFinalize(ActivationFormat format,
                                           std::vector<int32_t> expert_map,
                                           int64_t num_local_experts)
    : format_(format), expert_map_(std::move(expert_map)), num_local_(num_local_experts) {}

void permute_to_experts(ActivationFormat format, int64_t num_local_experts, int64_t hidden,
                        int64_t top_k, std::vector<int64_t>& slot,
                        absl::FunctionRef<const float*(int64_t)> row_of, ExpertBatch* batch) {
  const int64_t L = num_local_experts, H = hidden, K = top_k;
  const int64_t pairs = static_cast<int64_t>(slot.size());
  batch->format = format;
  batch->hidden = H;
  batch->num_local_experts = L;
  batch->expert_num_tokens.assign(L, 0);
  for (int64_t i = 0; i < pairs; ++i) {
    if (slot[i] >= 0) ++batch->expert_num_tokens[slot[i]];
  }
  std::vector<int64_t> next(L);
  if (format == ActivationFormat::kStandard) {
    batch->max_tokens_per_expert = 0;
    batch->expert_offsets.assign(L + 1, 0);
    for (int64_t e = 0; e < L; ++e) {
      next[e] = batch->expert_offsets[e];
      batch->expert_offsets[e + 1] = batch->expert_offsets[e] + batch->expert_num_tokens[e];
    }
  } else {
    int32_t max_tokens = 0;
    for (int32_t c : batch->expert_num_tokens) max_tokens = std::max(max_tokens, c);
    batch->max_tokens_per_expert = max_tokens;
    batch->expert_offsets.clear();
    for (int64_t e = 0; e < L; ++e) next[e] = e * max_tokens;
  }
  for (int64_t i = 0; i < pairs; ++i) {
    if (slot[i] >= 0) slot[i] = next[slot[i]]++;
  }
  batch->a1.resize(static_cast<size_t>(batch->rows() * H));
  parallel_for(
      pairs,
      [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          if (slot[i] < 0) continue;
          std::memcpy(batch->a1.data() + slot[i] * H, row_of(i / K), H * sizeof(float));
        }
      },
      64);
}

Status LocalPrepareFinalize::prepare(const RoutedTokens& in, ExpertBatch* batch) {
  const int64_t T = in.num_tokens, K = in.top_k, H = in.hidden;
  const int64_t E = static_cast<int64_t>(expert_map_.size());
  num_tokens_ = T;
  top_k_ = K;
  hidden_ = H;
  weights_.assign(in.topk_weights, in.topk_weights + T * K);
  slot_.resize(static_cast<size_t>(T * K));
  for (int64_t i = 0; i < T * K; ++i) {
    const int32_t g = in.topk_ids[i];
    if (g < 0 || g >= E) {
      return absl::InternalError(absl::StrFormat("moe: routed expert id %d out of range", g));
    }
    slot_[i] = expert_map_[g];
  }
  permute_to_experts(format_, num_local_, H, K, slot_,
                     [&](int64_t t) { return in.x + t * H; }, batch);
  return absl::OkStatus();
}

Status LocalPrepareFinalize::finalize(const ExpertBatch& /*batch*/, const float* expert_out,
                                      float* y) {
  const int64_t T = num_tokens_, K = top_k_, H = hidden_;
  parallel_for(
      T,
      [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
          float* yt = y + t * H;
          std::fill(yt, yt + H, 0.0f);
          for (int64_t k = 0; k < K; ++k) {
            const int64_t s = slot_[t * K + k];
            if (s < 0) continue;
            const float w = weights_[t * K + k];
            const float* o = expert_out + s * H;
            for (int64_t h = 0; h < H; ++h) yt[h] += w * o[h];
          }
        }
      },
      4);
  return absl::OkStatus();
}

}  // namespace moeserve
