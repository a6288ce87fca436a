// The fast DeepSeek runtime against the float64 reference, on generated tiny checkpoints of
// both architectures, in f32, bf16 and fp8, single-file and sharded; plus cache equivalences.
#include "model/deepseek.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <numeric>
#include <random>

#include "gen/gen_model.h"
#include "gtest/gtest.h"
#include "precision.h"
#include "reference_model.h"

namespace moeserve {
namespace {

namespace fs = std::filesystem;

// Generated checkpoints live in one directory per test process, removed at exit.
const fs::path& scratch_dir() {
  static const fs::path dir = [] {
    fs::path d = fs::path(::testing::TempDir()) / absl::StrCat("deepseek_test_", getpid());
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

std::string model_dir(const std::string& arch, DType dtype, int shards, bool twin = false) {
  const std::string name = absl::StrCat("deepseek_test_", arch, "_", std::string(dtype_name(dtype)),
                                        "_", shards, twin ? "_twin" : "");
  const fs::path dir = scratch_dir() / name;
  if (!fs::exists(dir / "config.json")) {
    GenModelOptions o;
    o.arch = arch;
    o.preset = "tiny";
    o.dtype = dtype;
    o.seed = 7;
    o.num_shards = shards;
    o.dequantized_twin = twin;
    Status st = generate_model(dir.string(), o);
    EXPECT_TRUE(st.ok()) << st;
  }
  return dir.string();
}

std::vector<int32_t> prompt_of(int64_t n, int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> p(n);
  for (auto& t : p) t = static_cast<int32_t>(rng() % vocab);
  return p;
}

// Position t's rows of a whole-sequence routing (the replay of a one-token step at t).
std::vector<MoeRouting> routing_at(const std::vector<MoeRouting>& all, int64_t t, int64_t k) {
  std::vector<MoeRouting> out(all.size());
  for (size_t l = 0; l < all.size(); ++l) {
    if (all[l].topk_ids.empty()) continue;
    out[l].topk_ids.assign(all[l].topk_ids.begin() + t * k, all[l].topk_ids.begin() + (t + 1) * k);
    out[l].topk_weights.assign(all[l].topk_weights.begin() + t * k,
                               all[l].topk_weights.begin() + (t + 1) * k);
  }
  return out;
}

// Logits of every position of `tokens` from the fast model, one chunk per position count.
// `replay` (may be null): the whole sequence's routing to replay, position by position.
std::vector<std::vector<float>> fast_all_logits(DeepseekModel& m,
                                                const std::vector<int32_t>& tokens,
                                                const std::vector<MoeRouting>* replay = nullptr) {
  const int64_t B = 16, n = static_cast<int64_t>(tokens.size());
  auto cache = LatentCache::create(m.config().num_hidden_layers, (n + B - 1) / B + 1, B,
                                   m.cache_entry_dim());
  EXPECT_TRUE(cache.ok());
  std::vector<int32_t> blocks((n + B - 1) / B + 1);
  std::iota(blocks.rbegin(), blocks.rend(), 0);  // reversed: tables need not be ordered
  std::vector<std::vector<float>> out;
  // First token alone, then the rest one at a time (decode path), so every position has logits.
  for (int64_t i = 0; i < n; ++i) {
    ForwardBatch b;
    b.add({tokens[i]}, i, blocks, true);
    std::vector<float> logits;
    std::vector<MoeRouting> step;
    if (replay) step = routing_at(*replay, i, m.config().num_experts_per_tok);
    Status st = m.forward(b, *cache, &logits, nullptr, replay ? &step : nullptr);
    EXPECT_TRUE(st.ok()) << st;
    out.push_back(logits);
  }
  return out;
}

double max_rel_err(const std::vector<float>& got, const std::vector<double>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    num = std::max(num, std::fabs(got[i] - want[i]));
    den = std::max(den, std::fabs(want[i]));
  }
  return num / std::max(den, 1e-30);
}

struct Case {
  std::string arch;
  DType dtype;
  int shards;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.arch << " " << dtype_name(c.dtype) << " " << c.shards << " shard(s)";
}

class ReferenceMatch : public ::testing::TestWithParam<Case> {};

TEST_P(ReferenceMatch, PrefillAndDecodeLogitsMatchReference) {
  const Case c = GetParam();
  const std::string dir = model_dir(c.arch, c.dtype, c.shards);
  auto ref = ReferenceModel::load(dir);
  ASSERT_TRUE(ref.ok()) << ref.status();
  auto fast = DeepseekModel::load(dir);
  ASSERT_TRUE(fast.ok()) << fast.status();
  const int64_t V = (*fast)->config().vocab_size;
  const auto tokens = prompt_of(37, V, 3);
  std::vector<MoeRouting> routing;  // the reference's expert choices, replayed below
  const auto want = ref->forward(tokens, &routing);  // [T][V]
  ASSERT_EQ(want.size(), tokens.size());
  const double tol = testing::reference_tolerance((*fast)->weight_dtype());

  // Whole prompt as one prefill chunk: logits of the last position.
  auto cache =
      LatentCache::create((*fast)->config().num_hidden_layers, 4, 16, (*fast)->cache_entry_dim());
  ASSERT_TRUE(cache.ok());
  ForwardBatch b;
  b.add(tokens, 0, {0, 1, 2}, true);
  std::vector<float> logits;
  ASSERT_TRUE((*fast)->forward(b, *cache, &logits, nullptr, &routing).ok());
  EXPECT_LT(max_rel_err(logits, want.back()), tol);

  // Token by token through the absorbed decode path: every position.
  const auto step = fast_all_logits(**fast, tokens, &routing);
  for (size_t t = 0; t < tokens.size(); ++t) {
    EXPECT_LT(max_rel_err(step[t], want[t]), tol) << "position " << t;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Tiny, ReferenceMatch,
    ::testing::Values(Case{"deepseek_v3", DType::kF32, 1}, Case{"deepseek_v2", DType::kF32, 1},
                      Case{"deepseek_v3", DType::kF32, 3}, Case{"deepseek_v2", DType::kF32, 3},
                      Case{"deepseek_v3", DType::kBF16, 1}, Case{"deepseek_v2", DType::kBF16, 1},
                      Case{"deepseek_v3", DType::kBF16, 2}, Case{"deepseek_v2", DType::kBF16, 2},
                      Case{"deepseek_v3", DType::kF8E4M3, 1},
                      Case{"deepseek_v2", DType::kF8E4M3, 2}),
    [](const auto& info) {
      return absl::StrCat(info.param.arch, "_", std::string(dtype_name(info.param.dtype)), "_",
                          info.param.shards, "shard");
    });

TEST(DeepseekModel, Fp8CheckpointEqualsItsDequantisedBf16Twin) {
  for (const std::string arch : {"deepseek_v3", "deepseek_v2"}) {
    auto fp8 = DeepseekModel::load(model_dir(arch, DType::kF8E4M3, 1));
    auto twin = DeepseekModel::load(model_dir(arch, DType::kF8E4M3, 1, /*twin=*/true));
    ASSERT_TRUE(fp8.ok()) << fp8.status();
    ASSERT_TRUE(twin.ok()) << twin.status();
    const auto tokens = prompt_of(21, (*fp8)->config().vocab_size, 11);
    const auto a = fast_all_logits(**fp8, tokens);
    const auto b = fast_all_logits(**twin, tokens);
    for (size_t t = 0; t < tokens.size(); ++t) EXPECT_EQ(a[t], b[t]) << arch << " position " << t;
  }
}

TEST(DeepseekModel, ChunkedPrefillThenDecodeEqualsFullRecompute) {
  auto m = DeepseekModel::load(model_dir("deepseek_v3", DType::kF32, 1));
  ASSERT_TRUE(m.ok()) << m.status();
  const auto tokens = prompt_of(45, (*m)->config().vocab_size, 5);
  const int64_t L = (*m)->config().num_hidden_layers, E = (*m)->cache_entry_dim();
  // Full recompute of the whole sequence in one chunk.
  auto c1 = LatentCache::create(L, 3, 16, E);
  ForwardBatch full;
  full.add(tokens, 0, {0, 1, 2}, true);
  std::vector<float> want;
  ASSERT_TRUE((*m)->forward(full, *c1, &want).ok());
  // Prefill 20 + chunk of 17 + 8 single decode steps, in another cache with other blocks.
  auto c2 = LatentCache::create(L, 6, 16, E);
  const std::vector<int32_t> blocks = {5, 2, 4};
  std::vector<float> got;
  ForwardBatch a;
  a.add({tokens.begin(), tokens.begin() + 20}, 0, blocks, false);
  ASSERT_TRUE((*m)->forward(a, *c2, &got).ok());
  EXPECT_TRUE(got.empty());
  ForwardBatch b;
  b.add({tokens.begin() + 20, tokens.begin() + 37}, 20, blocks, true);
  ASSERT_TRUE((*m)->forward(b, *c2, &got).ok());
  for (int64_t i = 37; i < 45; ++i) {
    ForwardBatch d;
    d.add({tokens[i]}, i, blocks, true);
    ASSERT_TRUE((*m)->forward(d, *c2, &got).ok());
  }
  ASSERT_EQ(got.size(), want.size());
  std::vector<double> wd(want.begin(), want.end());
  EXPECT_LT(max_rel_err(got, wd), 1e-5);
}

TEST(DeepseekModel, BatchOfSequencesEqualsEachAlone) {
  auto m = DeepseekModel::load(model_dir("deepseek_v2", DType::kF32, 1));
  ASSERT_TRUE(m.ok()) << m.status();
  const int64_t V = (*m)->config().vocab_size, L = (*m)->config().num_hidden_layers;
  const int64_t E = (*m)->cache_entry_dim();
  const std::vector<std::vector<int32_t>> seqs = {prompt_of(5, V, 1), prompt_of(23, V, 2),
                                                  prompt_of(1, V, 3), prompt_of(17, V, 4)};
  std::vector<std::vector<float>> alone;
  for (const auto& s : seqs) {
    auto c = LatentCache::create(L, 2, 16, E);
    ForwardBatch b;
    b.add(s, 0, {0, 1}, true);
    std::vector<float> lg;
    ASSERT_TRUE((*m)->forward(b, *c, &lg).ok());
    alone.push_back(lg);
  }
  auto c = LatentCache::create(L, 8, 16, E);
  ForwardBatch b;
  for (size_t i = 0; i < seqs.size(); ++i) {
    b.add(seqs[i], 0, {static_cast<int32_t>(2 * i), static_cast<int32_t>(2 * i + 1)}, true);
  }
  std::vector<float> lg;
  ASSERT_TRUE((*m)->forward(b, *c, &lg).ok());
  ASSERT_EQ(lg.size(), seqs.size() * V);
  for (size_t i = 0; i < seqs.size(); ++i) {
    std::vector<float> row(lg.begin() + i * V, lg.begin() + (i + 1) * V);
    std::vector<double> want(alone[i].begin(), alone[i].end());
    EXPECT_LT(max_rel_err(row, want), 1e-5) << "sequence " << i;
  }
  // A mixed step: decode of the batch's sequences alongside a fresh prefill.
  ForwardBatch mixed;
  mixed.add({3}, 5, {0, 1}, true);
  mixed.add(prompt_of(9, V, 9), 0, {6, 7}, true);
  ASSERT_TRUE((*m)->forward(mixed, *c, &lg).ok());
  EXPECT_EQ(lg.size(), 2u * V);
}

TEST(DeepseekModel, RejectsMalformedBatches) {
  auto m = DeepseekModel::load(model_dir("deepseek_v3", DType::kF32, 1));
  ASSERT_TRUE(m.ok()) << m.status();
  auto c = LatentCache::create((*m)->config().num_hidden_layers, 2, 16, (*m)->cache_entry_dim());
  std::vector<float> lg;
  ForwardBatch too_long;
  too_long.add(prompt_of(40, 100, 1), 0, {0, 1}, true);  // needs 3 blocks
  EXPECT_FALSE((*m)->forward(too_long, *c, &lg).ok());
  ForwardBatch bad_block;
  bad_block.add({1, 2}, 0, {9}, true);
  EXPECT_FALSE((*m)->forward(bad_block, *c, &lg).ok());
  ForwardBatch bad_token;
  bad_token.add({static_cast<int32_t>((*m)->config().vocab_size)}, 0, {0}, true);
  EXPECT_FALSE((*m)->forward(bad_token, *c, &lg).ok());
}

TEST(DeepseekModel, BatchedExpertsFormatEqualsGrouped) {
  const std::string dir = model_dir("deepseek_v3", DType::kBF16, 1);
  ModelLoadOptions batched;
  batched.experts_format = ActivationFormat::kBatched;
  auto a = DeepseekModel::load(dir);
  auto b = DeepseekModel::load(dir, batched);
  ASSERT_TRUE(a.ok() && b.ok());
  const auto tokens = prompt_of(30, (*a)->config().vocab_size, 8);
  auto ca = LatentCache::create((*a)->config().num_hidden_layers, 2, 16, (*a)->cache_entry_dim());
  auto cb = LatentCache::create((*a)->config().num_hidden_layers, 2, 16, (*a)->cache_entry_dim());
  ForwardBatch fb;
  fb.add(tokens, 0, {0, 1}, true);
  std::vector<float> la, lb;
  ASSERT_TRUE((*a)->forward(fb, *ca, &la).ok());
  ASSERT_TRUE((*b)->forward(fb, *cb, &lb).ok());
  EXPECT_EQ(la, lb);
}

}  // namespace
}  // namespace moeserve
