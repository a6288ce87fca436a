#include "moe/local_prepare_finalize.h"

#include <algorithm>
#include <cstring>

#include "core/parallel.h"

namespace moeserve {

LocalPrepareFinalize::LocalPrepareFinalize(ActivationFormat format,
                                           std::vector<int32_t> expert_map,
                                           int64_t num_local_experts)
    : format_(format), expert_map_(std::move(expert_map)), num_local_(num_local_experts) {}

Status LocalPrepareFinalize::prepare(const RoutedTokens& in, ExpertBatch* batch) {
  const int64_t T = in.num_tokens, K = in.top_k, H = in.hidden;
  const int64_t E = static_cast<int64_t>(expert_map_.size());
  num_tokens_ = T;
  top_k_ = K;
  hidden_ = H;
  batch->format = format_;
  batch->hidden = H;
  batch->num_local_experts = num_local_;
  batch->expert_num_tokens.assign(num_local_, 0);
  slot_.assign(static_cast<size_t>(T * K), -1);
  weights_.assign(in.topk_weights, in.topk_weights + T * K);

  std::vector<int32_t> local(static_cast<size_t>(T * K), -1);
  for (int64_t i = 0; i < T * K; ++i) {
    const int32_t g = in.topk_ids[i];
    if (g < 0 || g >= E) {
      return absl::InternalError(absl::StrFormat("moe: routed expert id %d out of range", g));
    }
    local[i] = expert_map_[g];
    if (local[i] >= 0) ++batch->expert_num_tokens[local[i]];
  }
  // Rows are assigned in (token, k) order within each expert, so the layout is deterministic.
  std::vector<int64_t> next(num_local_);
  if (format_ == ActivationFormat::kStandard) {
    batch->expert_offsets.assign(num_local_ + 1, 0);
    for (int64_t e = 0; e < num_local_; ++e) {
      batch->expert_offsets[e + 1] = batch->expert_offsets[e] + batch->expert_num_tokens[e];
    }
    for (int64_t e = 0; e < num_local_; ++e) next[e] = batch->expert_offsets[e];
  } else {
    int32_t max_tokens = 0;
    for (int32_t c : batch->expert_num_tokens) max_tokens = std::max(max_tokens, c);
    batch->max_tokens_per_expert = max_tokens;
    batch->expert_offsets.clear();
    for (int64_t e = 0; e < num_local_; ++e) next[e] = e * max_tokens;
  }
  for (int64_t i = 0; i < T * K; ++i) {
    if (local[i] >= 0) slot_[i] = next[local[i]]++;
  }
  batch->a1.resize(static_cast<size_t>(batch->rows() * H));
  parallel_for(
      T * K,
      [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          if (slot_[i] < 0) continue;
          std::memcpy(batch->a1.data() + slot_[i] * H, in.x + (i / K) * H, H * sizeof(float));
        }
      },
      64);
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
