#include "kernels/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/parallel.h"

namespace moeserve {
namespace {

double yarn_get_mscale(double scale, double mscale) {
  return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

// Dimension index whose wavelength completes `rotations` turns over the original context.
double yarn_correction_dim(double rotations, double dim, double theta, double orig_max_pos) {
  return dim * std::log(orig_max_pos / (rotations * 2.0 * std::numbers::pi)) /
         (2.0 * std::log(theta));
}

}  // namespace

RopeTable::RopeTable(const RopeParams& p) : p_(p) {
  const int64_t half = p.rotary_dim / 2;
  const double dim = static_cast<double>(p.rotary_dim);
  inv_freq_.resize(half);
  for (int64_t i = 0; i < half; ++i) {
    inv_freq_[i] = 1.0 / std::pow(p.theta, static_cast<double>(2 * i) / dim);
  }
  if (!p.yarn) return;
  const double orig = static_cast<double>(p.original_max_position);
  const double low =
      std::max(std::floor(yarn_correction_dim(p.beta_fast, dim, p.theta, orig)), 0.0);
  double high = std::min(std::ceil(yarn_correction_dim(p.beta_slow, dim, p.theta, orig)), dim - 1);
  if (low == high) high += 0.001;
  for (int64_t i = 0; i < half; ++i) {
    const double freq_extra = inv_freq_[i];
    const double freq_inter =
        1.0 / (p.factor * std::pow(p.theta, static_cast<double>(2 * i) / dim));
    const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
    const double mask = 1.0 - ramp;
    inv_freq_[i] = freq_inter * (1.0 - mask) + freq_extra * mask;
  }
  attn_factor_ = yarn_get_mscale(p.factor, p.mscale) / yarn_get_mscale(p.factor, p.mscale_all_dim);
}

void RopeTable::apply(float* x, int64_t num_tokens, int64_t token_stride, int64_t heads,
                      int64_t head_stride, const int32_t* positions) const {
  const int64_t half = static_cast<int64_t>(inv_freq_.size());
  parallel_for(
      num_tokens,
      [&](int64_t b, int64_t e) {
        std::vector<float> cs(2 * half);  // per token: (cos, sin) * attention_factor
        for (int64_t t = b; t < e; ++t) {
          const double pos = positions[t];
          for (int64_t i = 0; i < half; ++i) {
            const double angle = pos * inv_freq_[i];
            cs[2 * i] = static_cast<float>(std::cos(angle) * attn_factor_);
            cs[2 * i + 1] = static_cast<float>(std::sin(angle) * attn_factor_);
          }
          for (int64_t h = 0; h < heads; ++h) {
            float* v = x + t * token_stride + h * head_stride;
            for (int64_t i = 0; i < half; ++i) {
              const float c = cs[2 * i], s = cs[2 * i + 1];
              const float x0 = v[2 * i], x1 = v[2 * i + 1];
              v[2 * i] = x0 * c - x1 * s;
              v[2 * i + 1] = x0 * s + x1 * c;
            }
          }
        }
      },
      16);
}

}  // namespace moeserve
