#include "kernels/rope.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <random>
#include <vector>

namespace moeserve {
namespace {

RopeParams v3_params() {
  RopeParams p;
  p.rotary_dim = 64;
  p.theta = 10000.0;
  p.yarn = true;
  p.factor = 40.0;
  p.original_max_position = 4096;
  p.beta_fast = 32.0;
  p.beta_slow = 1.0;
  p.mscale = 1.0;
  p.mscale_all_dim = 1.0;
  return p;
}

TEST(Rope, PlainInvFreqIsClosedForm) {
  RopeParams p;
  p.rotary_dim = 64;
  p.theta = 10000.0;
  RopeTable t(p);
  ASSERT_EQ(t.inv_freq().size(), 32u);
  for (int i = 0; i < 32; ++i) {
    EXPECT_DOUBLE_EQ(t.inv_freq()[i], std::pow(10000.0, -2.0 * i / 64.0)) << i;
  }
  EXPECT_EQ(t.attention_factor(), 1.0);
}

TEST(Rope, PlainApplyRotatesInterleavedPairs) {
  RopeParams p;
  p.rotary_dim = 16;
  p.theta = 500.0;
  RopeTable t(p);
  const int64_t tokens = 4, heads = 3, head_stride = 20, token_stride = 70;
  std::vector<float> x(tokens * token_stride);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> d(-1, 1);
  for (float& v : x) v = d(rng);
  const std::vector<float> orig = x;
  const int32_t pos[tokens] = {0, 1, 17, 100000};
  t.apply(x.data(), tokens, token_stride, heads, head_stride, pos);
  for (int64_t tk = 0; tk < tokens; ++tk) {
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t base = tk * token_stride + h * head_stride;
      for (int i = 0; i < 8; ++i) {
        const double a = pos[tk] * std::pow(500.0, -2.0 * i / 16.0);
        const double x0 = orig[base + 2 * i], x1 = orig[base + 2 * i + 1];
        EXPECT_NEAR(x[base + 2 * i], x0 * std::cos(a) - x1 * std::sin(a), 2e-6);
        EXPECT_NEAR(x[base + 2 * i + 1], x0 * std::sin(a) + x1 * std::cos(a), 2e-6);
      }
      // Values between heads and after the rotary part are untouched.
      for (int64_t j = base + 16; j < base + head_stride && j < (tk + 1) * token_stride; ++j) {
        EXPECT_EQ(x[j], orig[j]);
      }
    }
  }
}

TEST(Rope, YarnInvFreqDeepSeekV3) {
  RopeTable t(v3_params());
  // Independent evaluation of HF's DeepseekV2YarnRotaryEmbedding for dim 64, base 1e4,
  // factor 40, original 4096, beta_fast 32, beta_slow 1.
  const double dim = 64, base = 10000, factor = 40, orig = 4096;
  auto corr = [&](double rot) {
    return dim * std::log(orig / (rot * 2 * std::numbers::pi)) / (2 * std::log(base));
  };
  const double low = std::max(std::floor(corr(32)), 0.0);
  const double high = std::min(std::ceil(corr(1)), dim - 1);
  // Worked by hand: corr(32) = 10.47..., corr(1) = 22.51...
  EXPECT_EQ(low, 10.0);
  EXPECT_EQ(high, 23.0);
  ASSERT_EQ(t.inv_freq().size(), 32u);
  for (int i = 0; i < 32; ++i) {
    const double extra = 1.0 / std::pow(base, 2.0 * i / dim);
    const double inter = extra / factor;
    const double ramp = std::min(1.0, std::max(0.0, (i - low) / (high - low)));
    const double want = inter * ramp + extra * (1.0 - ramp);
    EXPECT_NEAR(t.inv_freq()[i], want, 1e-12 * extra) << i;
  }
  // Fast-rotating dimensions keep their frequency; slow ones are interpolated by 1/factor.
  EXPECT_DOUBLE_EQ(t.inv_freq()[0], 1.0);
  EXPECT_DOUBLE_EQ(t.inv_freq()[10], std::pow(base, -20.0 / 64));
  EXPECT_NEAR(t.inv_freq()[31], std::pow(base, -62.0 / 64) / 40, 1e-15);
  EXPECT_NEAR(t.inv_freq()[16], std::pow(base, -0.5) * (1 - 6.0 / 13 * (1 - 1.0 / 40)), 1e-15);
  EXPECT_DOUBLE_EQ(t.attention_factor(), 1.0);
}

TEST(Rope, YarnAttentionFactor) {
  RopeParams lite = v3_params();
  lite.mscale = 0.707;
  lite.mscale_all_dim = 0.707;
  EXPECT_DOUBLE_EQ(RopeTable(lite).attention_factor(), 1.0);

  RopeParams p = v3_params();
  p.mscale_all_dim = 0.0;  // HF default: only the numerator mscale applies
  RopeTable t(p);
  EXPECT_NEAR(t.attention_factor(), 0.1 * std::log(40.0) + 1.0, 1e-12);

  // apply() scales cos/sin, hence every rotated pair's norm, by the attention factor.
  std::vector<float> x(64, 0.0f);
  for (int i = 0; i < 64; ++i) x[i] = 0.01f * (i + 1);
  const std::vector<float> orig = x;
  const int32_t pos = 1234;
  t.apply(x.data(), 1, 64, 1, 64, &pos);
  for (int i = 0; i < 32; ++i) {
    const double n0 = std::hypot(orig[2 * i], orig[2 * i + 1]);
    const double n1 = std::hypot(x[2 * i], x[2 * i + 1]);
    EXPECT_NEAR(n1, n0 * t.attention_factor(), 1e-5) << i;
  }
}

TEST(Rope, YarnWithoutScalingFactorKeepsBaseFrequencies) {
  RopeParams p = v3_params();
  p.factor = 1.0;
  RopeTable t(p);
  for (int i = 0; i < 32; ++i) {
    EXPECT_NEAR(t.inv_freq()[i], std::pow(10000.0, -2.0 * i / 64), 1e-15) << i;
  }
  EXPECT_DOUBLE_EQ(t.attention_factor(), 1.0);
}

}  // namespace
}  // namespace moeserve
