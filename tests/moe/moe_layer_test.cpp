// Every format-compatible (PrepareFinalize, Experts) pair computes the single-rank reference.
#include "moe/moe_layer.h"

#include <omp.h>

#include <cmath>
#include <random>

#include "gtest/gtest.h"
#include "kernels/ops.h"

namespace moeserve {
namespace {

Tensor random_tensor(std::vector<int64_t> shape, float scale, std::mt19937& rng) {
  Tensor t = Tensor::empty(DType::kF32, std::move(shape));
  std::normal_distribution<float> d(0.0f, scale);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = d(rng);
  return t;
}

struct Fixture {
  int64_t H = 24, I = 12, E = 8;
  GateParams gate;
  Tensor gate_w, bias;
  std::vector<Tensor> wg, wu, wd;  // per expert
  Tensor sg, su, sd;               // shared
  std::shared_ptr<ExpertWeights> experts = std::make_shared<ExpertWeights>();

  explicit Fixture(uint32_t seed) {
    std::mt19937 rng(seed);
    gate.num_experts = E;
    gate.top_k = 3;
    gate.num_groups = 4;
    gate.topk_groups = 2;
    gate.scoring = GateScoring::kSigmoid;
    gate.method = GateTopk::kNoauxTc;
    gate.renormalize = true;
    gate.routed_scaling_factor = 2.5f;
    gate_w = random_tensor({E, H}, 0.5f, rng);
    bias = random_tensor({E}, 0.1f, rng);
    experts->hidden = H;
    for (int64_t e = 0; e < E; ++e) {
      wg.push_back(random_tensor({I, H}, 0.3f, rng));
      wu.push_back(random_tensor({I, H}, 0.3f, rng));
      wd.push_back(random_tensor({H, I}, 0.3f, rng));
      experts->experts.push_back(*GatedMlp::create(wg[e], wu[e], wd[e]));
    }
    sg = random_tensor({I, H}, 0.3f, rng);
    su = random_tensor({I, H}, 0.3f, rng);
    sd = random_tensor({H, I}, 0.3f, rng);
  }

  // Plain per-token evaluation with the same routing.
  std::vector<float> reference(const std::vector<float>& x, int64_t T) const {
    std::vector<float> logits(T * E), w(T * gate.top_k), y(T * H, 0.0f);
    std::vector<int32_t> ids(T * gate.top_k);
    linear_ref(x.data(), T, gate_w, logits.data());
    select_experts(gate, logits.data(), bias.data<float>(), T, ids.data(), w.data());
    auto mlp = [&](const Tensor& g, const Tensor& u, const Tensor& d, const float* xt, float* out,
                   float scale) {
      std::vector<float> a(I), b(I), h(I), o(H);
      linear_ref(xt, 1, g, a.data());
      linear_ref(xt, 1, u, b.data());
      for (int64_t i = 0; i < I; ++i) h[i] = a[i] / (1 + std::exp(-a[i])) * b[i];
      linear_ref(h.data(), 1, d, o.data());
      for (int64_t j = 0; j < H; ++j) out[j] += scale * o[j];
    };
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t k = 0; k < gate.top_k; ++k) {
        const int32_t e = ids[t * gate.top_k + k];
        mlp(wg[e], wu[e], wd[e], x.data() + t * H, y.data() + t * H, w[t * gate.top_k + k]);
      }
      mlp(sg, su, sd, x.data() + t * H, y.data() + t * H, 1.0f);
    }
    return y;
  }
};

class MoeLayerFormats : public ::testing::TestWithParam<ActivationFormat> {};

TEST_P(MoeLayerFormats, MatchesPerTokenReference) {
  Fixture f(42);
  auto layer = make_local_moe_layer(f.gate, f.gate_w, f.bias, *GatedMlp::create(f.sg, f.su, f.sd),
                                    f.experts, GetParam());
  ASSERT_TRUE(layer.ok()) << layer.status();
  std::mt19937 rng(1);
  for (int64_t T : {1, 2, 7, 33}) {
    std::vector<float> x(T * f.H);
    std::normal_distribution<float> d;
    for (auto& v : x) v = d(rng);
    std::vector<float> y(T * f.H);
    MoeRouting routing;
    ASSERT_TRUE(layer->forward(x.data(), T, y.data(), &routing).ok());
    EXPECT_EQ(routing.topk_ids.size(), static_cast<size_t>(T * f.gate.top_k));
    const auto want = f.reference(x, T);
    for (int64_t i = 0; i < T * f.H; ++i) {
      ASSERT_NEAR(y[i], want[i], 1e-4 * (1 + std::fabs(want[i]))) << "T=" << T << " i=" << i;
    }
  }
}

// The experts give the reference at any thread count, for GEMV-sized (<= 8 rows) and
// GEMM-sized experts (each expert's GEMMs split their output rows over the threads).
TEST_P(MoeLayerFormats, MatchesReferenceAtAnyThreadCount) {
  Fixture f(7);
  auto layer = make_local_moe_layer(f.gate, f.gate_w, f.bias, std::nullopt, f.experts, GetParam());
  ASSERT_TRUE(layer.ok()) << layer.status();
  f.sg = Tensor::empty(DType::kF32, {f.I, f.H});  // zero shared expert == none
  f.su = Tensor::empty(DType::kF32, {f.I, f.H});
  f.sd = Tensor::empty(DType::kF32, {f.H, f.I});
  const int saved = omp_get_max_threads();
  std::mt19937 rng(5);
  for (int threads : {1, 4}) {
    omp_set_num_threads(threads);
    for (int64_t T : {6, 64}) {
      std::vector<float> x(T * f.H);
      std::normal_distribution<float> d;
      for (auto& v : x) v = d(rng);
      std::vector<float> y(T * f.H);
      ASSERT_TRUE(layer->forward(x.data(), T, y.data()).ok());
      const auto want = f.reference(x, T);
      for (int64_t i = 0; i < T * f.H; ++i) {
        ASSERT_NEAR(y[i], want[i], 1e-4 * (1 + std::fabs(want[i])))
            << "threads=" << threads << " T=" << T << " i=" << i;
      }
    }
  }
  omp_set_num_threads(saved);
}

INSTANTIATE_TEST_SUITE_P(Local, MoeLayerFormats,
                         ::testing::Values(ActivationFormat::kStandard, ActivationFormat::kBatched));

TEST(MoeLayer, NoauxTcWithoutBiasIsAnError) {
  Fixture f(3);
  auto layer = make_local_moe_layer(f.gate, f.gate_w, Tensor(), std::nullopt, f.experts,
                                    ActivationFormat::kStandard);
  EXPECT_FALSE(layer.ok());
}

}  // namespace
}  // namespace moeserve
