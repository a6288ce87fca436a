#include "model/reference_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "gen/gen_model.h"
#include "nlohmann/json.hpp"
#include "temp_dir.h"

namespace moeserve {
namespace {

using reference::Routing;
using reference::select_experts;

ModelConfig routing_config(TopkMethod method, int64_t experts, int64_t groups, int64_t topk_group,
                           int64_t k, bool norm, double rsf) {
  ModelConfig c;
  c.n_routed_experts = experts;
  c.n_group = groups;
  c.topk_group = topk_group;
  c.num_experts_per_tok = k;
  c.topk_method = method;
  c.norm_topk_prob = norm;
  c.routed_scaling_factor = rsf;
  return c;
}

TEST(ReferenceGate, NoauxTcPicksFromTheGroupsWithTheBestTopTwoSums) {
  // Groups {0,1} {2,3} {4,5} {6,7}; top-2 sums 0.25, 0.9375, 1.25, 1.125: groups 2 and 3
  // win although expert 2 holds the best single score.
  const ModelConfig c = routing_config(TopkMethod::kNoauxTc, 8, 4, 2, 2, true, 2.5);
  const std::vector<double> scores = {0.125, 0.125, 0.9375, 0.0, 0.625, 0.625, 0.5625, 0.5625};
  const Routing r = select_experts(scores, {}, c);
  EXPECT_EQ(r.ids, (std::vector<int64_t>{4, 5}));  // tie: lower index first
  ASSERT_EQ(r.weights.size(), 2u);
  EXPECT_NEAR(r.weights[0], 1.25, 1e-15);
  EXPECT_NEAR(r.weights[1], 1.25, 1e-15);
}

TEST(ReferenceGate, NoauxTcBiasSteersSelectionButNotWeights) {
  const ModelConfig c = routing_config(TopkMethod::kNoauxTc, 8, 4, 2, 2, true, 2.5);
  const std::vector<double> scores = {0.125, 0.125, 0.9375, 0.0, 0.625, 0.625, 0.5625, 0.5625};
  const std::vector<double> bias = {0, 0, 0, 0, 0, 0, 0.25, 0};
  // Biased group sums: g3 = 0.8125 + 0.5625 = 1.375, g2 = 1.25: both kept; top-2 biased
  // choices are expert 6 (0.8125) and expert 4 (0.625, tie with 5).
  const Routing r = select_experts(scores, bias, c);
  EXPECT_EQ(r.ids, (std::vector<int64_t>{6, 4}));
  const double sum = 0.5625 + 0.625;
  EXPECT_NEAR(r.weights[0], 0.5625 / sum * 2.5, 1e-14);
  EXPECT_NEAR(r.weights[1], 0.625 / sum * 2.5, 1e-14);
}

TEST(ReferenceGate, NoauxTcMasksDroppedGroupsWithMinusInfinity) {
  // All biased choices are negative; a 0.0 fill (HF) would select from dropped groups.
  const ModelConfig c = routing_config(TopkMethod::kNoauxTc, 8, 4, 1, 2, true, 1.0);
  const std::vector<double> scores(8, 0.25);
  const std::vector<double> bias = {-0.375, -0.5, -1, -1, -1, -1, -1, -1};
  const Routing r = select_experts(scores, bias, c);
  EXPECT_EQ(r.ids, (std::vector<int64_t>{0, 1}));
  EXPECT_NEAR(r.weights[0] + r.weights[1], 1.0, 1e-15);
}

TEST(ReferenceGate, GreedyIgnoresGroupsAndDoesNotRenormalise) {
  const ModelConfig c = routing_config(TopkMethod::kGreedy, 5, 1, 1, 3, false, 1.0);
  const std::vector<double> scores = {0.1, 0.3, 0.2, 0.3, 0.05};
  const Routing r = select_experts(scores, {}, c);
  EXPECT_EQ(r.ids, (std::vector<int64_t>{1, 3, 2}));
  EXPECT_EQ(r.weights, (std::vector<double>{0.3, 0.3, 0.2}));
}

TEST(ReferenceGate, GroupLimitedGreedyUsesTheGroupMaximum) {
  // Group maxima 0.3, 0.25, 0.2, 0 keep groups 0 and 1 (top-2 sums would keep group 2).
  const ModelConfig c = routing_config(TopkMethod::kGroupLimitedGreedy, 8, 4, 2, 2, false, 16.0);
  const std::vector<double> scores = {0.3, 0.0, 0.05, 0.25, 0.2, 0.2, 0.0, 0.0};
  const Routing r = select_experts(scores, {}, c);
  EXPECT_EQ(r.ids, (std::vector<int64_t>{0, 3}));
  EXPECT_NEAR(r.weights[0], 0.3 * 16, 1e-14);
  EXPECT_NEAR(r.weights[1], 0.25 * 16, 1e-14);
}

TEST(ReferenceGate, RenormalisationThenScaling) {
  ModelConfig c = routing_config(TopkMethod::kGreedy, 4, 1, 1, 2, true, 2.5);
  const std::vector<double> scores = {0.1, 0.6, 0.2, 0.1};
  Routing r = select_experts(scores, {}, c);
  EXPECT_EQ(r.ids, (std::vector<int64_t>{1, 2}));
  EXPECT_NEAR(r.weights[0] + r.weights[1], 2.5, 1e-14);
  EXPECT_NEAR(r.weights[0], 0.6 / 0.8 * 2.5, 1e-14);
  c.num_experts_per_tok = 1;  // no renormalisation for a single expert
  r = select_experts(scores, {}, c);
  EXPECT_NEAR(r.weights[0], 0.6 * 2.5, 1e-14);
}

TEST(ReferenceGate, ScoringFunctions) {
  const std::vector<double> logits = {1.0, 2.0, -1.0};
  const std::vector<double> sm = reference::score_experts(logits, ScoringFunc::kSoftmax);
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(-1.0);
  EXPECT_NEAR(sm[1], std::exp(2.0) / z, 1e-15);
  EXPECT_NEAR(sm[0] + sm[1] + sm[2], 1.0, 1e-15);
  const std::vector<double> sg = reference::score_experts(logits, ScoringFunc::kSigmoid);
  EXPECT_NEAR(sg[2], 1.0 / (1.0 + std::exp(1.0)), 1e-15);
}

ModelConfig yarn_config(int64_t rope_dim, double mscale, double mscale_all_dim) {
  ModelConfig c;
  c.qk_nope_head_dim = 128;
  c.qk_rope_head_dim = rope_dim;
  c.rope_theta = 10000.0;
  c.rope_scaling.yarn = true;
  c.rope_scaling.factor = 40.0;
  c.rope_scaling.original_max_position_embeddings = 4096;
  c.rope_scaling.beta_fast = 32.0;
  c.rope_scaling.beta_slow = 1.0;
  c.rope_scaling.mscale = mscale;
  c.rope_scaling.mscale_all_dim = mscale_all_dim;
  return c;
}

TEST(ReferenceRope, YarnInvFreqMatchesHandComputedValues) {
  // dim 64: correction range [floor(10.47), ceil(22.51)] = [10, 23]; index 20 blends
  // 10/13 of the interpolated and 3/13 of the extrapolated frequency 10^-2.5:
  // 10^-2.5 * (10/13/40 + 3/13) = 10^-2.5 / 4.
  const reference::RopeTable t = reference::rope_table(yarn_config(64, 1.0, 1.0));
  ASSERT_EQ(t.inv_freq.size(), 32u);
  EXPECT_NEAR(t.inv_freq[20], 0.0007905694150420946, 1e-18);
  EXPECT_DOUBLE_EQ(t.inv_freq[0], 1.0);  // below the range: extrapolated
  EXPECT_NEAR(t.inv_freq[31], std::pow(1e4, -62.0 / 64) / 40, 1e-18);  // above: interpolated
  EXPECT_DOUBLE_EQ(t.attention_factor, 1.0);

  // dim 8 (the tiny presets): range [1, 3]; index 2 is halfway: 0.01 * (0.5/40 + 0.5).
  const reference::RopeTable tiny = reference::rope_table(yarn_config(8, 0.707, 0.707));
  EXPECT_NEAR(tiny.inv_freq[2], 0.005125, 1e-17);
  EXPECT_NEAR(tiny.inv_freq[3], 2.5e-5, 1e-19);

  const reference::RopeTable af = reference::rope_table(yarn_config(64, 1.0, 0.0));
  EXPECT_NEAR(af.attention_factor, 0.1 * std::log(40.0) + 1.0, 1e-15);
}

TEST(ReferenceRope, SoftmaxScaleMatchesPublishedValuesAndTheConfig) {
  const ModelConfig v3 = yarn_config(64, 1.0, 1.0);
  EXPECT_NEAR(reference::softmax_scale(v3), 0.13523, 5e-6);
  EXPECT_NEAR(v3.softmax_scale(), reference::softmax_scale(v3), 1e-12);
  const ModelConfig v2 = yarn_config(64, 0.707, 0.707);
  EXPECT_NEAR(reference::softmax_scale(v2), 0.11472, 5e-6);
  EXPECT_NEAR(v2.softmax_scale(), reference::softmax_scale(v2), 1e-12);
  ModelConfig plain = v3;
  plain.rope_scaling.yarn = false;
  EXPECT_NEAR(reference::softmax_scale(plain), 1.0 / std::sqrt(192.0), 1e-15);
}

TEST(ReferenceRope, RotationDependsOnRelativePositionOnly) {
  const reference::RopeTable t = reference::rope_table(yarn_config(8, 1.0, 1.0));
  const std::vector<double> q0 = {0.3, -1.2, 0.7, 0.1, -0.4, 0.9, 1.5, -0.2};
  const std::vector<double> k0 = {1.1, 0.4, -0.6, 0.8, 0.2, -1.3, 0.5, 0.05};
  auto dot_at = [&](int64_t pq, int64_t pk) {
    std::vector<double> q = q0, k = k0;
    reference::apply_rope(t, pq, q.data());
    reference::apply_rope(t, pk, k.data());
    double d = 0;
    for (size_t i = 0; i < q.size(); ++i) d += q[i] * k[i];
    return d;
  };
  EXPECT_NEAR(dot_at(7, 3), dot_at(104, 100), 1e-12);
  EXPECT_GT(std::fabs(dot_at(7, 3) - dot_at(7, 7)), 1e-3);
  std::vector<double> q = q0;
  reference::apply_rope(t, 0, q.data());
  EXPECT_EQ(q, q0);
  // Pair (x0, x1) at position 1 rotates by inv_freq[0] = 1 radian.
  q = q0;
  reference::apply_rope(t, 1, q.data());
  EXPECT_NEAR(q[0], 0.3 * std::cos(1.0) + 1.2 * std::sin(1.0), 1e-15);
  EXPECT_NEAR(q[1], 0.3 * std::sin(1.0) - 1.2 * std::cos(1.0), 1e-15);
}

// --- whole-model checks on generated tiny checkpoints --------------------------------------

std::string generate(const std::string& arch, DType dtype, bool twin = false) {
  const std::string d = testing_dirs::temp_dir(
      absl::StrCat(arch, "_", std::string(dtype_name(dtype)), twin ? "_twin" : ""));
  GenModelOptions o;
  o.arch = arch;
  o.preset = "tiny";
  o.dtype = dtype;
  o.seed = 11;
  o.dequantized_twin = twin;
  const Status st = generate_model(d, o);
  EXPECT_TRUE(st.ok()) << st;
  return d;
}

const std::vector<int32_t> kTokens = {0, 17, 300, 42, 42, 511, 5, 260, 99, 1};

double max_abs(const std::vector<std::vector<double>>& a) {
  double m = 0;
  for (const auto& row : a) {
    for (double v : row) m = std::max(m, std::fabs(v));
  }
  return m;
}

double max_abs_diff(const std::vector<std::vector<double>>& a,
                    const std::vector<std::vector<double>>& b) {
  double m = 0;
  for (size_t t = 0; t < a.size(); ++t) {
    for (size_t i = 0; i < a[t].size(); ++i) m = std::max(m, std::fabs(a[t][i] - b[t][i]));
  }
  return m;
}

class ReferenceModelTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ReferenceModelTest, LogitsAreFiniteCausalAndDeterministic) {
  auto m = ReferenceModel::load(generate(GetParam(), DType::kBF16));
  ASSERT_TRUE(m.ok()) << m.status();
  const auto logits = m->forward(kTokens);
  ASSERT_EQ(logits.size(), kTokens.size());
  for (const auto& row : logits) {
    ASSERT_EQ(static_cast<int64_t>(row.size()), m->config().vocab_size);
    for (double v : row) ASSERT_TRUE(std::isfinite(v));
  }
  EXPECT_GT(max_abs(logits), 0.5);
  // Positions differ, including the repeated token 42 at positions 3 and 4.
  for (size_t t = 1; t < logits.size(); ++t) {
    EXPECT_GT(max_abs_diff({logits[t]}, {logits[t - 1]}), 1e-3) << t;
  }
  EXPECT_EQ(m->forward(kTokens), logits);
  // A prefix sees exactly what the full sequence saw at those positions.
  const std::vector<int32_t> prefix(kTokens.begin(), kTokens.begin() + 4);
  const auto head = m->forward(prefix);
  for (size_t t = 0; t < prefix.size(); ++t) EXPECT_EQ(head[t], logits[t]) << t;
}

TEST_P(ReferenceModelTest, Bf16LogitsStayCloseToF32) {
  auto f = ReferenceModel::load(generate(GetParam(), DType::kF32));
  auto b = ReferenceModel::load(generate(GetParam(), DType::kBF16));
  ASSERT_TRUE(f.ok() && b.ok());
  const auto lf = f->forward(kTokens);
  const auto lb = b->forward(kTokens);
  EXPECT_LT(max_abs_diff(lf, lb), 2e-2 * max_abs(lf));
  EXPECT_GT(max_abs_diff(lf, lb), 0.0);  // they are different models
}

TEST_P(ReferenceModelTest, Fp8MatchesItsDequantisedTwin) {
  auto q = ReferenceModel::load(generate(GetParam(), DType::kF8E4M3));
  auto t = ReferenceModel::load(generate(GetParam(), DType::kF8E4M3, true));
  ASSERT_TRUE(q.ok()) << q.status();
  ASSERT_TRUE(t.ok()) << t.status();
  const auto lq = q->forward(kTokens);
  const auto lt = t->forward(kTokens);
  // The twin rounds fp8 * scale to bf16 (8 significant bits), a perturbation like bf16 vs
  // f32 (about 1% of the logits here); fp8 vs the f32 original moves them by 12-20%.
  EXPECT_LT(max_abs_diff(lq, lt), 2e-2 * max_abs(lq));
}

INSTANTIATE_TEST_SUITE_P(Tiny, ReferenceModelTest, ::testing::Values("deepseek_v3", "deepseek_v2"));

TEST(ReferenceModelLoad, ShapeMismatchIsAnErrorNamingTheTensor) {
  const std::string dir = generate("deepseek_v3", DType::kBF16);
  std::ifstream in(dir + "/config.json");
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json cfg = nlohmann::json::parse(ss.str());
  ASSERT_EQ(cfg["kv_lora_rank"], 32);
  cfg["kv_lora_rank"] = 24;
  std::ofstream(dir + "/config.json", std::ios::trunc) << cfg.dump(2);
  auto m = ReferenceModel::load(dir);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("kv_a_proj_with_mqa"), std::string_view::npos) << m.status();
}

TEST(ReferenceModelVariants, SmallGreedyV2Preset) {
  const std::string dir = testing_dirs::temp_dir("small_v2");
  GenModelOptions o;
  o.arch = "deepseek_v2";
  o.preset = "small";
  o.seed = 3;
  ASSERT_TRUE(generate_model(dir, o).ok());
  auto m = ReferenceModel::load(dir);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->config().topk_method, TopkMethod::kGreedy);
  const auto logits = m->forward({0, 1000, 2047, 7});
  ASSERT_EQ(logits.size(), 4u);
  for (const auto& row : logits) {
    ASSERT_EQ(row.size(), 2048u);
    for (double v : row) ASSERT_TRUE(std::isfinite(v));
  }
  EXPECT_GT(max_abs_diff({logits[3]}, {logits[2]}), 1e-3);
}

TEST(ReferenceModelVariants, TiedEmbeddingsSparseMoeLayersPlainRope) {
  auto c = preset_config("deepseek_v3", "tiny");
  ASSERT_TRUE(c.ok());
  c->tie_word_embeddings = true;
  c->num_hidden_layers = 4;
  c->moe_layer_freq = 2;  // layers 0 (first_k_dense), 1, 3 dense; layer 2 MoE
  c->rope_scaling = RopeScaling{};
  const std::string dir = testing_dirs::temp_dir("variant");
  GenModelOptions o;
  o.seed = 5;
  const Status st = generate_model_from_config(dir, *c, o);
  ASSERT_TRUE(st.ok()) << st;
  auto m = ReferenceModel::load(dir);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_TRUE(m->config().tie_word_embeddings);
  EXPECT_FALSE(m->config().rope_scaling.yarn);
  EXPECT_FALSE(m->config().is_moe_layer(1));
  EXPECT_TRUE(m->config().is_moe_layer(2));
  const auto logits = m->forward(kTokens);
  for (const auto& row : logits) {
    for (double v : row) ASSERT_TRUE(std::isfinite(v));
  }
}

}  // namespace
}  // namespace moeserve
