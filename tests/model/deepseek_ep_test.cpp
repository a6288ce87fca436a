// Expert-parallel DeepSeek models against the single-process model: each rank (a forked
// process; fork happens before any UCX initialisation) loads the checkpoint with only its
// share of the experts and runs a multi-step generation (a prefill in two chunks, then decode
// steps through the latent cache) over its own sequences, in lockstep with its peers (ranks
// with nothing to do run dummy forwards); it loads the same checkpoint without expert
// parallelism too and runs the same generation alone. Tokens and logits must agree within
// the precision path's tolerance (precision.h), for tiny deepseek_v2 and deepseek_v3 checkpoints in
// f32 and bf16, 2 and 4 ranks, every backend with its experts format, unequal sequence counts and
// an idle rank, over UCX's default transports and over TCP.
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <random>

#include "../comm/multi_process.h"
#include "absl/strings/match.h"
#include "gen/gen_model.h"
#include "gtest/gtest.h"
#include "model/deepseek.h"
#include "precision.h"

namespace moeserve {
namespace {

namespace fs = std::filesystem;
using testing::all_ok;
using testing::free_port;
using testing::local_options;
using testing::run_ranks;

const fs::path& scratch_dir() {
  static const fs::path dir = [] {
    fs::path d = fs::path(::testing::TempDir()) / absl::StrCat("deepseek_ep_test_", getpid());
    fs::create_directories(d);
    return d;
  }();
  return dir;
}

class ScratchCleanup : public ::testing::Environment {
 public:
  void TearDown() override { fs::remove_all(scratch_dir()); }
};
const auto* const kCleanup = ::testing::AddGlobalTestEnvironment(new ScratchCleanup);

// Generated in a child process: the parent must not start OpenMP's thread pool before it
// forks the ranks (a forked child cannot use the parent's pool).
std::string model_dir(const std::string& arch, DType dtype) {
  const fs::path dir = scratch_dir() / absl::StrCat(arch, "_", std::string(dtype_name(dtype)));
  if (!fs::exists(dir / "config.json")) {
    auto rs = run_ranks(1, [&](int) {
      GenModelOptions o;
      o.arch = arch;
      o.preset = "tiny";
      o.dtype = dtype;
      o.seed = 11;
      return generate_model(dir.string(), o);
    });
    EXPECT_TRUE(all_ok(rs)) << "generate_model " << dir;
  }
  return dir.string();
}

// Ranks share the machine's few cores: one compute thread each, or OpenMP's spinning workers
// starve the peers' communication progress (a forward then takes seconds instead of ms).
void one_thread_per_rank() {
  omp_set_num_threads(1);
}

std::vector<int32_t> prompt_of(int64_t n, int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> p(n);
  for (auto& t : p) t = static_cast<int32_t>(rng() % vocab);
  return p;
}

int64_t argmax(const float* row, int64_t n) {
  return std::max_element(row, row + n) - row;
}

struct Generation {
  std::vector<std::vector<float>> logits;        // per step with logits: [S, V]
  std::vector<std::vector<int32_t>> out;         // per sequence: generated tokens
  std::vector<std::string> moe_backend;          // per step: the backend the MoE layers ran
  std::vector<std::vector<MoeRouting>> routing;  // per step: every MoE layer's expert choices
};

// Step 0: first half of every prompt (no logits); step 1: the rest (logits); then `decodes`
// single-token steps. A rank runs `total_steps` forwards: past its own steps, or with no
// sequences, it passes empty batches (dummy forwards). `forced` (may be null) supplies the
// tokens to feed instead of the greedy ones, and the expert choices to replay in its steps
// (teacher forcing from the reference run; see precision.h for why routing is replayed).
StatusOr<Generation> generate(DeepseekModel& m, const std::vector<std::vector<int32_t>>& prompts,
                              int decodes, int total_steps, const Generation* forced) {
  const int64_t V = m.config().vocab_size, S = static_cast<int64_t>(prompts.size());
  constexpr int64_t kBlocksPerSeq = 4, kBlock = 16;
  MS_ASSIGN_OR_RETURN(LatentCache cache,
                      LatentCache::create(m.config().num_hidden_layers, kBlocksPerSeq * S + 1,
                                          kBlock, m.cache_entry_dim()));
  auto blocks = [&](int64_t s) {
    std::vector<int32_t> b(kBlocksPerSeq);
    std::iota(b.begin(), b.end(), static_cast<int32_t>(kBlocksPerSeq * s));
    return b;
  };
  Generation g;
  g.out.resize(S);
  for (int step = 0; step < total_steps; ++step) {
    ForwardBatch b;
    if (step < 2 + decodes) {
      for (int64_t s = 0; s < S; ++s) {
        const auto& p = prompts[s];
        const int64_t half = static_cast<int64_t>(p.size()) / 2;
        if (step == 0) {
          b.add({p.begin(), p.begin() + half}, 0, blocks(s), false);
        } else if (step == 1) {
          b.add({p.begin() + half, p.end()}, half, blocks(s), true);
        } else {
          const int64_t pos = static_cast<int64_t>(p.size() + g.out[s].size()) - 1;
          b.add({g.out[s].back()}, pos, blocks(s), true);
        }
      }
    }
    std::vector<float> logits = {1.0f};  // must be replaced
    const bool replay = forced && step < static_cast<int>(forced->routing.size());
    g.routing.emplace_back();
    MS_RETURN_IF_ERROR(
        m.forward(b, cache, &logits, &g.routing.back(), replay ? &forced->routing[step] : nullptr));
    g.moe_backend.push_back(m.last_moe_backend());
    MS_TEST_CHECK(static_cast<int64_t>(logits.size()) == b.num_logit_rows() * V,
                  "step %d: %d logits for %d rows", step, logits.size(), b.num_logit_rows());
    if (b.num_logit_rows() == 0) continue;
    for (int64_t s = 0; s < S; ++s) {
      const size_t i = g.out[s].size();
      g.out[s].push_back(forced ? forced->out[s][i]
                                : static_cast<int32_t>(argmax(logits.data() + s * V, V)));
    }
    g.logits.push_back(std::move(logits));
  }
  return g;
}

// EP logits and greedy tokens against the reference's. A greedy token may differ only where
// the reference's top two logits are closer than the tolerance.
Status compare(const Generation& got, const Generation& want, int64_t V, double tol) {
  MS_TEST_CHECK(got.logits.size() == want.logits.size(), "%d vs %d steps with logits",
                got.logits.size(), want.logits.size());
  for (size_t i = 0; i < want.logits.size(); ++i) {
    const int64_t S = static_cast<int64_t>(want.logits[i].size()) / V;
    for (int64_t s = 0; s < S; ++s) {
      const float* a = got.logits[i].data() + s * V;
      const float* b = want.logits[i].data() + s * V;
      double num = 0, den = 0;
      for (int64_t v = 0; v < V; ++v) {
        num = std::max(num, std::fabs(double(a[v]) - b[v]));
        den = std::max(den, std::fabs(double(b[v])));
      }
      MS_TEST_CHECK(num <= tol * den, "step %d sequence %d: logits differ by %g (max %g)", i, s,
                    num, den);
      std::vector<float> sorted(b, b + V);
      std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<>());
      const bool clear_winner = sorted[0] - sorted[1] > 2 * tol * den;
      MS_TEST_CHECK(!clear_winner || argmax(a, V) == want.out[s][i],
                    "step %d sequence %d: greedy token %d, reference %d", i, s, argmax(a, V),
                    want.out[s][i]);
    }
  }
  return absl::OkStatus();
}

struct Case {
  std::string arch;
  DType dtype;
  int world;
  std::string backend;
  bool tcp = false;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.arch << " " << dtype_name(c.dtype) << " EP=" << c.world << " " << c.backend
      << (c.tcp ? " tcp" : "");
}

class EpModel : public ::testing::TestWithParam<Case> {};

TEST_P(EpModel, GenerationMatchesSingleProcess) {
  const Case c = GetParam();
  const std::string dir = model_dir(c.arch, c.dtype);
  const int n = c.world, port = free_port();
  constexpr int kDecodes = 3;
  constexpr int64_t kMaxTokensPerRank = 4;  // prefill steps exceed it, decode steps do not
  // Sequences per rank in two generations: unequal counts; then rank 0 idle throughout.
  const std::vector<std::vector<int>> counts =
      n == 2 ? std::vector<std::vector<int>>{{2, 1}, {0, 3}}
             : std::vector<std::vector<int>>{{2, 0, 3, 1}, {0, 1, 2, 1}};
  auto rs = run_ranks(
      n,
      [&](int r) -> Status {
        one_thread_per_rank();
        MS_ASSIGN_OR_RETURN(auto group, ProcessGroup::create(local_options(r, n, port, c.tcp)));
        ModelLoadOptions ep;
        MS_ASSIGN_OR_RETURN(const All2AllBackend backend, parse_all2all_backend(c.backend));
        ep.expert_parallel = ExpertParallelOptions{group.get(), backend, kMaxTokensPerRank};
        MS_ASSIGN_OR_RETURN(auto model, DeepseekModel::load(dir, ep));
        MS_ASSIGN_OR_RETURN(auto single, DeepseekModel::load(dir));
        const int64_t E = model->config().n_routed_experts, V = model->config().vocab_size;
        const double tol = testing::path_tolerance(model->weight_dtype());
        MS_TEST_CHECK(
            model->num_local_experts() == E / n && model->first_local_expert() == r * E / n,
            "rank %d holds experts [%d, +%d)", r, model->first_local_expert(),
            model->num_local_experts());
        // Ranks decode for different numbers of steps; all run the longest schedule.
        const int decodes = kDecodes + r, total = 2 + kDecodes + (n - 1);
        for (size_t gen = 0; gen < counts.size(); ++gen) {
          std::vector<std::vector<int32_t>> prompts;
          for (int s = 0; s < counts[gen][r]; ++s) {
            prompts.push_back(prompt_of(7 + 5 * s + 3 * r, V, 100 * gen + 10 * r + s));
          }
          MS_ASSIGN_OR_RETURN(Generation want,
                              generate(*single, prompts, decodes, 2 + decodes, nullptr));
          MS_ASSIGN_OR_RETURN(Generation got, generate(*model, prompts, decodes, total, &want));
          MS_RETURN_IF_ERROR(compare(got, want, V, tol));
          if (c.backend == "auto") {
            // Prefill steps bring more than kMaxTokensPerRank tokens on some rank: all2all_ht;
            // decode-only steps do not: all2all_ll.
            MS_TEST_CHECK(got.moe_backend[0] == "all2all_ht" && got.moe_backend[1] == "all2all_ht",
                          "prefill ran %s", got.moe_backend[1]);
            MS_TEST_CHECK(got.moe_backend.back() == "all2all_ll", "decode ran %s",
                          got.moe_backend.back());
          }
        }
        return group->barrier();
      },
      std::chrono::seconds(120));
  EXPECT_TRUE(all_ok(rs));
}

std::vector<Case> all_cases() {
  std::vector<Case> out;
  for (const std::string arch : {"deepseek_v3", "deepseek_v2"}) {
    for (DType dt : {DType::kF32, DType::kBF16}) {
      for (int world : {2, 4}) {
        for (const std::string b :
             {"allgather_reducescatter", "all2all_ht", "all2all_ll", "auto"}) {
          out.push_back(Case{arch, dt, world, b});
        }
      }
    }
  }
  out.push_back(Case{"deepseek_v3", DType::kBF16, 2, "auto", /*tcp=*/true});
  out.push_back(Case{"deepseek_v2", DType::kF32, 4, "all2all_ht", /*tcp=*/true});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Tiny, EpModel, ::testing::ValuesIn(all_cases()), [](const auto& info) {
  const Case& c = info.param;
  return absl::StrCat(c.arch, "_", std::string(dtype_name(c.dtype)), "_ep", c.world, "_", c.backend,
                      c.tcp ? "_tcp" : "");
});

// A rank whose batch fails validation still runs the MoE exchanges (with no tokens), so its
// peer's forward completes with the right logits; an empty batch returns no logits.
TEST(EpModel, InvalidBatchOnOneRankKeepsPeersInLockstep) {
  const std::string dir = model_dir("deepseek_v3", DType::kF32);
  const int port = free_port();
  auto rs = run_ranks(2, [&](int r) -> Status {
    one_thread_per_rank();
    MS_ASSIGN_OR_RETURN(auto group, ProcessGroup::create(local_options(r, 2, port, false)));
    ModelLoadOptions ep;
    ep.expert_parallel = ExpertParallelOptions{group.get(), All2AllBackend::kHighThroughput, 256};
    MS_ASSIGN_OR_RETURN(auto model, DeepseekModel::load(dir, ep));
    MS_ASSIGN_OR_RETURN(auto single, DeepseekModel::load(dir));
    const int64_t V = model->config().vocab_size;
    auto cache =
        LatentCache::create(model->config().num_hidden_layers, 4, 16, model->cache_entry_dim());
    MS_RETURN_IF_ERROR(cache.status());
    ForwardBatch b;
    if (r == 0) {
      b.add({1, 2, static_cast<int32_t>(V)}, 0, {0}, true);  // token id out of range
    } else {
      b.add(prompt_of(9, V, 4), 0, {1}, true);
    }
    std::vector<float> logits;
    Status st = model->forward(b, *cache, &logits);
    if (r == 0) {
      MS_TEST_CHECK(absl::IsInvalidArgument(st), "bad batch gave %s", st.ToString());
      MS_TEST_CHECK(logits.empty(), "bad batch gave %d logits", logits.size());
      MS_TEST_CHECK(model->last_moe_backend() == "all2all_ht", "ran %s", model->last_moe_backend());
    } else {
      MS_RETURN_IF_ERROR(st);
      std::vector<float> want;
      MS_RETURN_IF_ERROR(single->forward(b, *cache, &want));
      MS_TEST_CHECK(logits.size() == want.size(), "%d logits", logits.size());
      for (size_t i = 0; i < want.size(); ++i) {
        MS_TEST_CHECK(std::fabs(logits[i] - want[i]) <= 1e-4f * (1 + std::fabs(want[i])),
                      "logit %d: %g vs %g", i, logits[i], want[i]);
      }
    }
    // Both ranks idle: a dummy step still runs the exchanges and returns no logits.
    ForwardBatch empty;
    logits.assign(3, 1.0f);
    MS_RETURN_IF_ERROR(model->forward(empty, *cache, &logits));
    MS_TEST_CHECK(logits.empty(), "empty batch gave %d logits", logits.size());
    return group->barrier();
  });
  EXPECT_TRUE(all_ok(rs));
}

TEST(EpModel, LoadErrorsNameTheSettingAtFault) {
  const std::string dir = model_dir("deepseek_v3", DType::kF32);
  int port = free_port();
  auto rs = run_ranks(2, [&](int r) -> Status {
    one_thread_per_rank();
    MS_ASSIGN_OR_RETURN(auto group, ProcessGroup::create(local_options(r, 2, port, false)));
    ModelLoadOptions o;
    o.expert_parallel = ExpertParallelOptions{group.get(), All2AllBackend::kLowLatency, 8};
    o.experts_format = ActivationFormat::kStandard;
    auto m = DeepseekModel::load(dir, o);
    MS_TEST_CHECK(!m.ok() && absl::StrContains(m.status().message(),
                                               "all2all_ll dispatches in the batched experts "
                                               "format; experts format 'grouped' is not "
                                               "compatible"),
                  "%s", m.status().ToString());
    o.expert_parallel->all2all_backend = All2AllBackend::kAuto;
    o.experts_format = ActivationFormat::kBatched;
    m = DeepseekModel::load(dir, o);
    MS_TEST_CHECK(!m.ok() && absl::StrContains(m.status().message(), "takes no experts format"),
                  "%s", m.status().ToString());
    // The name is parsed once, at the command line.
    auto pplx = parse_all2all_backend("pplx");
    MS_TEST_CHECK(
        !pplx.ok() && absl::StrContains(pplx.status().message(), "unknown all2all backend 'pplx'"),
        "%s", pplx.status().ToString());
    // vLLM's names map to ours; the explicit matching format is accepted.
    MS_ASSIGN_OR_RETURN(o.expert_parallel->all2all_backend,
                        parse_all2all_backend("deepep_low_latency"));
    o.experts_format = ActivationFormat::kBatched;
    MS_ASSIGN_OR_RETURN(auto ll, DeepseekModel::load(dir, o));
    MS_ASSIGN_OR_RETURN(o.expert_parallel->all2all_backend,
                        parse_all2all_backend("deepep_high_throughput"));
    o.experts_format.reset();
    MS_ASSIGN_OR_RETURN(auto ht, DeepseekModel::load(dir, o));
    auto cache = LatentCache::create(ll->config().num_hidden_layers, 2, 16, ll->cache_entry_dim());
    MS_RETURN_IF_ERROR(cache.status());
    ForwardBatch b;
    b.add({5, 6, 7}, 0, {r}, true);
    std::vector<float> logits;
    MS_RETURN_IF_ERROR(ll->forward(b, *cache, &logits));
    MS_TEST_CHECK(ll->last_moe_backend() == "all2all_ll", "%s", ll->last_moe_backend());
    MS_RETURN_IF_ERROR(ht->forward(b, *cache, &logits));
    MS_TEST_CHECK(ht->last_moe_backend() == "all2all_ht", "%s", ht->last_moe_backend());
    return group->barrier();
  });
  EXPECT_TRUE(all_ok(rs));
  port = free_port();
  rs = run_ranks(3, [&](int r) -> Status {
    one_thread_per_rank();
    MS_ASSIGN_OR_RETURN(auto group, ProcessGroup::create(local_options(r, 3, port, false)));
    ModelLoadOptions o;
    o.expert_parallel =
        ExpertParallelOptions{group.get(), All2AllBackend::kAllGatherReduceScatter, 256};
    auto m = DeepseekModel::load(dir, o);
    MS_TEST_CHECK(!m.ok() && m.status().message() ==
                                 "config.json: n_routed_experts (16) is not divisible by the "
                                 "expert-parallel size (3)",
                  "%s", m.status().ToString());
    return group->barrier();
  });
  EXPECT_TRUE(all_ok(rs));
}

}  // namespace
}  // namespace moeserve
