#include "moe/gate.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace moeserve {
namespace {

float logit_of(float p) { return std::log(p / (1 - p)); }  // sigmoid^-1

TEST(Gate, GreedySoftmaxNoRenormScales) {
  GateParams p;
  p.num_experts = 4;
  p.top_k = 2;
  p.routed_scaling_factor = 2.0f;
  const std::vector<float> logits = {0.0f, 2.0f, 1.0f, 2.0f};
  int32_t ids[2];
  float w[2];
  select_experts(p, logits.data(), nullptr, 1, ids, w);
  // Ties go to the lower index: 1 then 3.
  EXPECT_EQ(ids[0], 1);
  EXPECT_EQ(ids[1], 3);
  double z = 1 + 2 * std::exp(2.0) + std::exp(1.0);
  EXPECT_NEAR(w[0], 2.0 * std::exp(2.0) / z, 1e-6);
  EXPECT_NEAR(w[1], 2.0 * std::exp(2.0) / z, 1e-6);
}

TEST(Gate, RenormalizeThenScale) {
  GateParams p;
  p.num_experts = 3;
  p.top_k = 2;
  p.renormalize = true;
  p.routed_scaling_factor = 2.5f;
  const std::vector<float> logits = {1.0f, 0.0f, 3.0f};
  int32_t ids[2];
  float w[2];
  select_experts(p, logits.data(), nullptr, 1, ids, w);
  EXPECT_EQ(ids[0], 2);
  EXPECT_EQ(ids[1], 0);
  EXPECT_NEAR(w[0] + w[1], 2.5f, 1e-5);
  EXPECT_NEAR(w[0] / w[1], std::exp(2.0), 1e-4);
}

TEST(Gate, GroupLimitedGreedyUsesGroupMax) {
  // 8 experts in 4 groups of 2; keep 2 groups. Group maxima: g0 .30, g1 .25, g2 .20, g3 .28.
  GateParams p;
  p.num_experts = 8;
  p.top_k = 3;
  p.num_groups = 4;
  p.topk_groups = 2;
  p.method = GateTopk::kGroupLimitedGreedy;
  const std::vector<double> probs = {0.30, 0.01, 0.25, 0.24, 0.20, 0.19, 0.28, 0.27};
  std::vector<float> logits;
  for (double q : probs) logits.push_back(static_cast<float>(std::log(q)));
  int32_t ids[3];
  float w[3];
  select_experts(p, logits.data(), nullptr, 1, ids, w);
  // Groups 0 and 3 survive; top-3 among {0,1,6,7}: 0, 6, 7 (not 2 or 3 from group 1).
  EXPECT_EQ(ids[0], 0);
  EXPECT_EQ(ids[1], 6);
  EXPECT_EQ(ids[2], 7);
}

TEST(Gate, NoauxTcBiasSelectsButDoesNotWeight) {
  // 8 experts, 4 groups of 2, keep 2 groups, top-2, sigmoid scores.
  GateParams p;
  p.num_experts = 8;
  p.top_k = 2;
  p.num_groups = 4;
  p.topk_groups = 2;
  p.scoring = GateScoring::kSigmoid;
  p.method = GateTopk::kNoauxTc;
  p.renormalize = true;
  p.routed_scaling_factor = 2.5f;
  const std::vector<float> s = {0.9f, 0.1f, 0.5f, 0.5f, 0.6f, 0.6f, 0.2f, 0.2f};
  std::vector<float> logits;
  for (float q : s) logits.push_back(logit_of(q));
  // Bias lifts group 3 (sum of top-2 = 0.4 + 2*0.5 = 1.4) above group 0 (1.0) and group 1 (1.0).
  const std::vector<float> bias = {0, 0, 0, 0, 0, 0, 0.5f, 0.5f};
  int32_t ids[2];
  float w[2];
  select_experts(p, logits.data(), bias.data(), 1, ids, w);
  // Groups kept: 3 (1.4) and 2 (1.2). Choice values: 6,7 -> 0.7; 4,5 -> 0.6. Pick 6 and 7.
  EXPECT_EQ(ids[0], 6);
  EXPECT_EQ(ids[1], 7);
  // Weights come from the unbiased scores (0.2 each), renormalised, scaled.
  EXPECT_NEAR(w[0], 1.25f, 1e-5);
  EXPECT_NEAR(w[1], 1.25f, 1e-5);
  // Expert 0 has the best raw score but its group lost.
  for (int i = 0; i < 2; ++i) EXPECT_NE(ids[i], 0);
}

TEST(Gate, ValidateRejectsInconsistentShapes) {
  GateParams p;
  p.num_experts = 10;
  p.top_k = 2;
  p.num_groups = 3;
  EXPECT_FALSE(p.validate().ok());
  p.num_groups = 5;
  p.topk_groups = 6;
  EXPECT_FALSE(p.validate().ok());
  p.topk_groups = 1;
  p.method = GateTopk::kGroupLimitedGreedy;
  p.top_k = 3;  // only 2 experts in one group
  EXPECT_FALSE(p.validate().ok());
  p.top_k = 2;
  EXPECT_TRUE(p.validate().ok());
}

}  // namespace
}  // namespace moeserve
