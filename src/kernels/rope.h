// Rotary position embedding with DeepSeek's YaRN scaling (the HF DeepseekV2/V3
// YarnRotaryEmbedding math) applied to interleaved pairs (x[2i], x[2i+1]) with frequency i,
// as DeepSeek's reference and vLLM (is_neox_style=False) apply it.
// Thread-safety: immutable after construction; apply() may be called concurrently on disjoint
// data (it splits tokens over OpenMP threads itself).
#pragma once

#include <cstdint>
#include <vector>

namespace moeserve {

struct RopeParams {
  int64_t rotary_dim = 64;
  double theta = 10000.0;
  bool yarn = false;
  double factor = 1.0;
  int64_t original_max_position = 4096;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 1.0;
  double mscale_all_dim = 0.0;
};

class RopeTable {
 public:
  RopeTable() = default;
  explicit RopeTable(const RopeParams& p);
  const std::vector<double>& inv_freq() const { return inv_freq_; }
  // cos/sin scale: yarn_get_mscale(factor, mscale) / yarn_get_mscale(factor, mscale_all_dim).
  double attention_factor() const { return attn_factor_; }

  // Rotates `heads` vectors of rotary_dim values per token, in place.
  // x points at token 0, head 0's rotary part; token t, head h lives at
  // x + t*token_stride + h*head_stride.
  void apply(float* x, int64_t num_tokens, int64_t token_stride, int64_t heads,
             int64_t head_stride, const int32_t* positions) const;

 private:
  RopeParams p_;
  std::vector<double> inv_freq_;  // [rotary_dim/2]
  double attn_factor_ = 1.0;
};

}  // namespace moeserve
