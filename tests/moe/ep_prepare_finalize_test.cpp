// Expert-parallel PrepareFinalize backends against the single-rank reference: each rank (a
// forked process) computes its tokens' MoE output with the backend over its share of the
// experts, and with LocalPrepareFinalize over all experts; both must agree within f32
// rounding. Unequal token counts, an idle rank, tokens whose experts are all local or all
// remote, chunking (LL), 2 and 4 ranks, UCX default transports and TCP.
#include <cmath>
#include <cstring>
#include <random>

#include "../comm/multi_process.h"
#include "gtest/gtest.h"
#include "moe/all2all_ht_prepare_finalize.h"
#include "moe/all2all_ll_prepare_finalize.h"
#include "moe/allgather_reducescatter_prepare_finalize.h"
#include "moe/experts.h"
#include "moe/local_prepare_finalize.h"
#include "moe/moe_layer.h"

namespace moeserve {
namespace {

using testing::all_ok;
using testing::free_port;
using testing::local_options;
using testing::run_ranks;

enum class Backend { kAgRs, kHt, kLl };

Tensor random_tensor(std::vector<int64_t> shape, float scale, std::mt19937& rng) {
  Tensor t = Tensor::empty(DType::kF32, std::move(shape));
  std::normal_distribution<float> d(0.0f, scale);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = d(rng);
  return t;
}

// Expert weights for E experts, identical on every rank (fixed seed).
std::vector<GatedMlp> make_experts(int64_t E, int64_t H, int64_t I, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<GatedMlp> out;
  for (int64_t e = 0; e < E; ++e) {
    out.push_back(*GatedMlp::create(random_tensor({I, H}, 0.3f, rng),
                                    random_tensor({I, H}, 0.3f, rng),
                                    random_tensor({H, I}, 0.3f, rng)));
  }
  return out;
}

std::shared_ptr<ExpertWeights> subset(const std::vector<GatedMlp>& all, int64_t first,
                                      int64_t count, int64_t H) {
  auto w = std::make_shared<ExpertWeights>();
  w->hidden = H;
  w->experts.assign(all.begin() + first, all.begin() + first + count);
  return w;
}

StatusOr<std::unique_ptr<PrepareFinalize>> make_backend(Backend b, ProcessGroup* g, int64_t E,
                                                        int64_t H, int64_t K, int64_t max_tokens) {
  switch (b) {
    case Backend::kAgRs: {
      MS_ASSIGN_OR_RETURN(auto pf, AllGatherReduceScatterPrepareFinalize::create(g, E));
      return std::unique_ptr<PrepareFinalize>(std::move(pf));
    }
    case Backend::kHt: {
      MS_ASSIGN_OR_RETURN(auto pf, All2AllHtPrepareFinalize::create(g, E));
      return std::unique_ptr<PrepareFinalize>(std::move(pf));
    }
    case Backend::kLl: {
      MS_ASSIGN_OR_RETURN(
          auto pf, All2AllLlPrepareFinalize::create(g, LowLatencyConfig{E, H, K, max_tokens}));
      return std::unique_ptr<PrepareFinalize>(std::move(pf));
    }
  }
  return absl::InternalError("unknown backend");
}

std::unique_ptr<Experts> make_experts_for(ActivationFormat f, std::shared_ptr<ExpertWeights> w) {
  if (f == ActivationFormat::kStandard) return std::make_unique<GroupedExperts>(std::move(w));
  return std::make_unique<BatchedExperts>(std::move(w));
}

Status compare(const std::vector<float>& y, const std::vector<float>& want, const char* what) {
  for (size_t i = 0; i < want.size(); ++i) {
    if (!(std::fabs(y[i] - want[i]) <= 1e-4f * (1 + std::fabs(want[i])))) {
      return absl::InternalError(
          absl::StrFormat("%s: element %d is %g, reference %g", what, i, y[i], want[i]));
    }
  }
  return absl::OkStatus();
}

struct Case {
  Backend backend;
  int world;
  bool tcp;
};

class EpBackends : public ::testing::TestWithParam<Case> {};

TEST_P(EpBackends, MatchLocalReference) {
  const Case c = GetParam();
  const int n = c.world, port = free_port();
  constexpr int64_t H = 32, I = 16, E = 16, K = 3, kMaxTokens = 4;
  // Tokens per rank, two rounds: unequal counts, one idle rank each round.
  const std::vector<std::vector<int64_t>> rounds =
      n == 2 ? std::vector<std::vector<int64_t>>{{0, 11}, {5, 3}}
             : std::vector<std::vector<int64_t>>{{5, 0, 9, 3}, {2, 7, 0, 1}};
  auto rs = run_ranks(n, [&](int r) -> Status {
    MS_ASSIGN_OR_RETURN(auto g, ProcessGroup::create(local_options(r, n, port, c.tcp)));
    const auto all = make_experts(E, H, I, 7);
    MS_ASSIGN_OR_RETURN(auto placement, ContiguousPlacement::create(E, n));
    MS_ASSIGN_OR_RETURN(auto pf, make_backend(c.backend, g.get(), E, H, K, kMaxTokens));
    auto experts = make_experts_for(
        pf->format(), subset(all, placement.first_expert(r), placement.num_local_experts(r), H));
    std::vector<int32_t> identity(E);
    for (int64_t e = 0; e < E; ++e) identity[e] = static_cast<int32_t>(e);
    LocalPrepareFinalize ref_pf(ActivationFormat::kStandard, identity, E);
    GroupedExperts ref_experts(subset(all, 0, E, H));
    for (size_t round = 0; round < rounds.size(); ++round) {
      const int64_t T = rounds[round][r];
      std::mt19937 rng(1000 * round + r);
      std::normal_distribution<float> nd;
      std::uniform_real_distribution<float> ud(0.1f, 1.0f);
      std::vector<float> x(T * H), w(T * K);
      std::vector<int32_t> ids(T * K);
      for (auto& v : x) v = nd(rng);
      for (auto& v : w) v = ud(rng);
      for (int64_t t = 0; t < T; ++t) {
        std::vector<int32_t> perm(E);
        for (int64_t e = 0; e < E; ++e) perm[e] = static_cast<int32_t>(e);
        std::shuffle(perm.begin(), perm.end(), rng);
        // Token 0: every expert on this rank; token 1: every expert on the next rank.
        const int home = t == 0 ? r : (r + 1) % n;
        for (int64_t k = 0; k < K; ++k) {
          ids[t * K + k] =
              t <= 1 ? static_cast<int32_t>(placement.first_expert(home) + k) : perm[k];
        }
      }
      RoutedTokens in{x.data(), T, H, ids.data(), w.data(), K};
      ExpertBatch batch, ref_batch;
      std::vector<float> out, ref_out, y(T * H, -1.0f), want(T * H);
      MS_RETURN_IF_ERROR(run_modular_kernel(*pf, *experts, in, &batch, &out, y.data()));
      MS_RETURN_IF_ERROR(
          run_modular_kernel(ref_pf, ref_experts, in, &ref_batch, &ref_out, want.data()));
      MS_RETURN_IF_ERROR(compare(y, want, pf->name()));
    }
    return g->barrier();
  });
  EXPECT_TRUE(all_ok(rs));
}

INSTANTIATE_TEST_SUITE_P(
    Ep, EpBackends,
    ::testing::Values(Case{Backend::kAgRs, 2, false}, Case{Backend::kAgRs, 4, false},
                      Case{Backend::kAgRs, 2, true}, Case{Backend::kAgRs, 4, true},
                      Case{Backend::kHt, 2, false}, Case{Backend::kHt, 4, false},
                      Case{Backend::kHt, 2, true}, Case{Backend::kHt, 4, true},
                      Case{Backend::kLl, 2, false}, Case{Backend::kLl, 4, false},
                      Case{Backend::kLl, 2, true}, Case{Backend::kLl, 4, true}),
    [](const auto& info) {
      const Case& c = info.param;
      const char* b = c.backend == Backend::kAgRs ? "AgRs"
                      : c.backend == Backend::kHt ? "Ht"
                                                  : "Ll";
      return absl::StrCat(b, "_", c.world, "ranks_", c.tcp ? "Tcp" : "Default");
    });

// all2all_ht with the identity as experts (expert output = a1) against the sum it documents,
// bit for bit: per token, 0 + the partial of each rank holding any of its experts in rank
// order, each partial 0 + w_k * x over that rank's k in order. Rounds where every token goes
// only to this rank, only to peers, to both (repeated experts included), and idle ranks; the
// same object throughout (buffers shrink and grow), finalize() and finalize_begin/end.
class HtExactSums : public ::testing::TestWithParam<int> {};

TEST_P(HtExactSums, BitIdenticalToDocumentedOrder) {
  const int n = GetParam(), port = free_port();
  constexpr int64_t H = 37, E = 8, K = 3;
  enum Mode { kMixed, kSelfOnly, kPeersOnly };
  const std::vector<Mode> modes = {kMixed, kSelfOnly, kPeersOnly, kMixed, kMixed};
  auto rs = run_ranks(n, [&](int r) -> Status {
    MS_ASSIGN_OR_RETURN(auto g, ProcessGroup::create(local_options(r, n, port, false)));
    MS_ASSIGN_OR_RETURN(auto placement, ContiguousPlacement::create(E, n));
    MS_ASSIGN_OR_RETURN(auto pf, All2AllHtPrepareFinalize::create(g.get(), E));
    ExpertBatch batch;
    for (size_t round = 0; round < modes.size(); ++round) {
      std::mt19937 rng(77 * round + r);
      // Round 3: rank 0 idle; round 4: large counts.
      const int64_t T = round == 3 && r == 0 ? 0 : round == 4 ? 300 + 17 * r : 5 + 3 * r;
      std::normal_distribution<float> nd;
      std::uniform_real_distribution<float> ud(0.1f, 1.0f);
      std::vector<float> x(T * H), w(T * K);
      std::vector<int32_t> ids(T * K);
      for (auto& v : x) v = rng() % 13 == 0 ? -0.0f : nd(rng);
      for (auto& v : w) v = ud(rng);
      const int64_t own = placement.first_expert(r), num_own = placement.num_local_experts(r);
      for (int64_t i = 0; i < T * K; ++i) {
        int32_t e = static_cast<int32_t>(rng() % E);
        if (modes[round] == kSelfOnly) e = static_cast<int32_t>(own + rng() % num_own);
        while (modes[round] == kPeersOnly && placement.owner(e) == r) {
          e = static_cast<int32_t>(rng() % E);
        }
        ids[i] = e;
      }
      std::vector<float> want(T * H);
      for (int64_t t = 0; t < T; ++t) {
        for (int64_t h = 0; h < H; ++h) {
          float y = 0.0f;
          for (int o = 0; o < n; ++o) {
            bool any = false;
            float p = 0.0f;
            for (int64_t k = 0; k < K; ++k) {
              if (placement.owner(ids[t * K + k]) != o) continue;
              p += w[t * K + k] * x[t * H + h];
              any = true;
            }
            if (any) y += p;
          }
          want[t * H + h] = y;
        }
      }
      RoutedTokens in{x.data(), T, H, ids.data(), w.data(), K};
      std::vector<float> y(T * H, -1.0f);
      MS_RETURN_IF_ERROR(pf->prepare(in, &batch));
      if (batch.num_local_experts != num_own ||
          static_cast<int64_t>(batch.expert_offsets.size()) != num_own + 1) {
        return absl::InternalError("all2all_ht: wrong local expert layout");
      }
      if (round % 2 == 0) {
        MS_RETURN_IF_ERROR(pf->finalize(batch, batch.a1.data(), y.data()));
      } else {
        MS_RETURN_IF_ERROR(pf->finalize_begin(batch, batch.a1.data()));
        MS_RETURN_IF_ERROR(pf->finalize_end(y.data()));
      }
      if (T > 0 && std::memcmp(y.data(), want.data(), y.size() * sizeof(float)) != 0) {
        return absl::InternalError(absl::StrFormat("round %d: output differs bitwise", round));
      }
    }
    return g->barrier();
  });
  EXPECT_TRUE(all_ok(rs));
}

INSTANTIATE_TEST_SUITE_P(Ep, HtExactSums, ::testing::Values(2, 4),
                         [](const auto& info) { return absl::StrCat(info.param, "ranks"); });

// The whole layer (gate, chunked backend, shared experts overlapped with the combine) on two
// ranks equals the single-rank layer.
class EpMoeLayer : public ::testing::TestWithParam<Backend> {};

TEST_P(EpMoeLayer, MatchesSingleRankLayer) {
  const int n = 2, port = free_port();
  constexpr int64_t H = 24, I = 12, E = 8, K = 3;
  auto rs = run_ranks(n, [&](int r) -> Status {
    MS_ASSIGN_OR_RETURN(auto g, ProcessGroup::create(local_options(r, n, port, false)));
    std::mt19937 rng(42);
    GateParams gate;
    gate.num_experts = E;
    gate.top_k = K;
    gate.num_groups = 4;
    gate.topk_groups = 2;
    gate.scoring = GateScoring::kSigmoid;
    gate.method = GateTopk::kNoauxTc;
    gate.renormalize = true;
    gate.routed_scaling_factor = 2.5f;
    Tensor gate_w = random_tensor({E, H}, 0.5f, rng), bias = random_tensor({E}, 0.1f, rng);
    const auto all = make_experts(E, H, I, 9);
    auto shared = [&] {
      std::mt19937 srng(5);
      return *GatedMlp::create(random_tensor({I, H}, 0.3f, srng), random_tensor({I, H}, 0.3f, srng),
                               random_tensor({H, I}, 0.3f, srng));
    };
    MS_ASSIGN_OR_RETURN(auto ref,
                        make_local_moe_layer(gate, gate_w, bias, shared(), subset(all, 0, E, H),
                                             ActivationFormat::kStandard));
    MS_ASSIGN_OR_RETURN(auto pf, make_backend(GetParam(), g.get(), E, H, K, 3));
    auto experts = make_experts_for(pf->format(), subset(all, r * E / n, E / n, H));
    MS_ASSIGN_OR_RETURN(auto layer, MoeLayer::create(gate, gate_w, bias, shared(), std::move(pf),
                                                     std::move(experts)));
    for (int64_t T : r == 0 ? std::vector<int64_t>{7, 0, 1} : std::vector<int64_t>{2, 0, 10}) {
      std::vector<float> x(T * H), y(T * H), want(T * H);
      std::normal_distribution<float> d;
      std::mt19937 xrng(100 + r + T);
      for (auto& v : x) v = d(xrng);
      MS_RETURN_IF_ERROR(layer.forward(x.data(), T, y.data()));
      MS_RETURN_IF_ERROR(ref.forward(x.data(), T, want.data()));
      MS_RETURN_IF_ERROR(compare(y, want, layer.prepare_finalize_name()));
    }
    return g->barrier();
  });
  EXPECT_TRUE(all_ok(rs));
}

INSTANTIATE_TEST_SUITE_P(Ep, EpMoeLayer,
                         ::testing::Values(Backend::kAgRs, Backend::kHt, Backend::kLl),
                         [](const auto& info) {
                           return info.param == Backend::kAgRs ? "AgRs"
                                  : info.param == Backend::kHt ? "Ht"
                                                               : "Ll";
                         });

}  // namespace
}  // namespace moeserve
