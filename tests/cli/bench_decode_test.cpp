// The analytic decode cost model and `moeserve bench decode` on a generated tiny model.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "cli/model_cost.h"
#include "gen/gen_model.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace moeserve {
namespace {

namespace fs = std::filesystem;

ModelConfig v2_lite_shape() {
  auto c = preset_config("deepseek_v2", "v2-lite-4l");
  EXPECT_TRUE(c.ok()) << c.status();
  return *c;
}

TEST(ModelCost, ExpectedExpertsTouchedGrowsFromTopKToAll) {
  const ModelConfig c = v2_lite_shape();
  const double E = static_cast<double>(c.n_routed_experts);
  const double k = static_cast<double>(c.num_experts_per_tok);
  EXPECT_DOUBLE_EQ(expected_experts_touched(c, 1), k);
  EXPECT_NEAR(expected_experts_touched(c, 2), E * (1 - (1 - k / E) * (1 - k / E)), 1e-9);
  double prev = 0;
  for (int b : {1, 2, 4, 8, 16, 32, 64}) {
    const double t = expected_experts_touched(c, b);
    EXPECT_GT(t, prev) << b;
    EXPECT_LE(t, E) << b;
    prev = t;
  }
  EXPECT_GT(expected_experts_touched(c, 4096), E - 1e-6);
}

TEST(ModelCost, BatchOneStepReadsWhatASingleDecodeReads) {
  const ModelConfig c = v2_lite_shape();
  EXPECT_NEAR(decode_step_bytes(c, 1, 100, 2.0), decode_bytes(c, 100, 2.0),
              1e-9 * decode_bytes(c, 100, 2.0));
  // Batching amortises the weights: bytes per token fall, but the step reads more.
  const double b1 = decode_step_bytes(c, 1, 100, 2.0);
  const double b32 = decode_step_bytes(c, 32, 100, 2.0);
  EXPECT_GT(b32, b1);
  EXPECT_LT(b32 / 32.0, b1 / 4.0);
}

TEST(ModelCost, DecodeFlopsAreTwicePerActiveWeightPlusAttention) {
  const ModelConfig c = v2_lite_shape();
  // Per-token FLOPs grow with the context only through attention over the latents.
  const double f0 = decode_token_flops(c, 0), f100 = decode_token_flops(c, 100);
  EXPECT_NEAR(f100 - f0,
              100.0 * 4.0 * c.num_attention_heads * (c.kv_lora_rank + c.qk_rope_head_dim) *
                  c.num_hidden_layers,
              1e-6 * f100);
  // At least 2 FLOPs per weight byte pair read at batch 1 (bf16: 2 bytes per weight).
  EXPECT_GT(f0, decode_bytes(c, 0, 2.0) * 0.9);
}

TEST(BenchDecode, ReportsEveryBatchWithSpeedupOverBatchOne) {
  const fs::path dir = fs::path(::testing::TempDir()) / absl::StrCat("bench_decode_", getpid());
  GenModelOptions o;
  o.preset = "tiny";
  o.dtype = DType::kF32;
  ASSERT_TRUE(generate_model(dir.string(), o).ok());
  std::vector<std::string> args = {"moeserve bench decode", dir.string(), "--batch", "1,3",
                                   "--prompt-len",          "5",          "--decode-tokens",
                                   "6",                     "--runs",     "1",
                                   "--json"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  ::testing::internal::CaptureStdout();
  const int rc = bench_decode_main(static_cast<int>(argv.size()), argv.data());
  const std::string out = ::testing::internal::GetCapturedStdout();
  fs::remove_all(dir);
  ASSERT_EQ(rc, 0) << out;
  // Log lines may precede it; the JSON object is the last line.
  const size_t start = out.rfind('\n', out.size() - 2);
  const auto j = nlohmann::json::parse(start == std::string::npos ? out : out.substr(start + 1));
  ASSERT_EQ(j["rows"].size(), 2u);
  EXPECT_EQ(j["rows"][0]["batch"], 1);
  EXPECT_EQ(j["rows"][1]["batch"], 3);
  EXPECT_DOUBLE_EQ(j["rows"][0]["speedup_over_batch1"].get<double>(), 1.0);
  for (const auto& r : j["rows"]) {
    EXPECT_GT(r["decode_tokens_per_s"].get<double>(), 0.0);
    EXPECT_GT(r["bound_tokens_per_s"].get<double>(), 0.0);
    EXPECT_GT(r["step_bytes"].get<double>(), 0.0);
    EXPECT_DOUBLE_EQ(r["bound_tokens_per_s"].get<double>(),
                     std::min(r["bytes_bound_tokens_per_s"].get<double>(),
                              r["compute_bound_tokens_per_s"].get<double>()));
  }
  EXPECT_GT(j["rows"][1]["experts_touched_per_layer"].get<double>(),
            j["rows"][0]["experts_touched_per_layer"].get<double>());
}

TEST(BenchDecode, RejectsBadBatchList) {
  std::vector<std::string> args = {"moeserve bench decode", "/nonexistent", "--batch", "1,x"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  EXPECT_NE(bench_decode_main(static_cast<int>(argv.size()), argv.data()), 0);
}

}  // namespace
}  // namespace moeserve
