// `bench moe-layer` on tiny shapes: it runs both formats, its FLOP and byte counts are the
// formulas written out here independently, its routing statistics are consistent, and bad
// options are rejected.
#include "moe/bench_moe_layer.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace moeserve {
namespace {

MoeLayerBenchOptions tiny() {
  MoeLayerBenchOptions o;
  o.shape.hidden = 32;
  o.shape.inter = 24;
  o.shape.num_experts = 8;
  o.shape.top_k = 2;
  o.shape.num_shared = 1;
  o.tokens = {1, 3, 40};
  o.runs = 2;
  o.min_time_s = 0.0;
  o.ceiling_size = 64;
  o.dram_bytes = int64_t{1} << 20;
  return o;
}

TEST(BenchMoeLayer, CountsMatchFormulas) {
  const MoeLayerBenchOptions o = tiny();
  auto pts = run_moe_layer_bench(o);
  ASSERT_TRUE(pts.ok()) << pts.status();
  ASSERT_EQ(pts->size(), 6u);  // 3 token counts x 2 formats, token-major
  const double H = 32, I = 24, E = 8, K = 2, S = 1, w = 2;  // bf16 weights
  for (size_t i = 0; i < pts->size(); ++i) {
    const MoeLayerPoint& p = (*pts)[i];
    const double T = static_cast<double>(o.tokens[i / 2]);
    EXPECT_EQ(p.format, i % 2 == 0 ? "grouped" : "batched");
    EXPECT_EQ(p.tokens, o.tokens[i / 2]);
    EXPECT_DOUBLE_EQ(p.routed_flops, 6 * T * K * H * I);
    EXPECT_DOUBLE_EQ(p.layer_flops, 2 * T * H * E + 6 * T * K * H * I + 6 * T * H * S * I);
    // Top-k ids of one token are distinct: between K and min(E, T*K) experts get rows.
    EXPECT_GE(p.experts_touched, K);
    EXPECT_LE(p.experts_touched, std::min(E, T * K));
    if (T == 1) {
      EXPECT_DOUBLE_EQ(p.experts_touched, K);
    }
    EXPECT_DOUBLE_EQ(p.expert_bytes, p.experts_touched * 3 * H * I * w);
    EXPECT_DOUBLE_EQ(p.layer_bytes, p.experts_touched * 3 * H * I * w + (E * H + 3 * H * S * I) * w);
    EXPECT_NEAR(p.tokens_per_expert * p.experts_touched, T * K, 1e-6 * T * K);
    EXPECT_GE(p.max_tokens_per_expert, p.tokens_per_expert - 1e-9);
    EXPECT_LE(p.max_tokens_per_expert, T);
    EXPECT_GT(p.experts_s, 0);
    EXPECT_GE(p.layer_s, p.experts_s);
    EXPECT_GT(p.gemm_gflops, 0);
    EXPECT_GT(p.dram_gbps, 0);
    EXPECT_NEAR(p.experts_gflops(), p.routed_flops / p.experts_s / 1e9, 1e-9);
  }
}

TEST(BenchMoeLayer, F32WeightsCountFourBytes) {
  MoeLayerBenchOptions o = tiny();
  o.shape.weight_dtype = DType::kF32;
  o.tokens = {2};
  o.formats = {"batched"};
  o.runs = 1;
  auto pts = run_moe_layer_bench(o);
  ASSERT_TRUE(pts.ok()) << pts.status();
  ASSERT_EQ(pts->size(), 1u);
  EXPECT_DOUBLE_EQ((*pts)[0].expert_bytes, (*pts)[0].experts_touched * 3 * 32 * 24 * 4);
}

int run(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return bench_moe_layer_main(static_cast<int>(argv.size()), argv.data());
}

TEST(BenchMoeLayer, CommandLine) {
  const std::vector<std::string> small = {"moe-layer",      "--hidden",     "32",   "--inter",
                                          "16",             "--num-experts", "8",    "--topk",
                                          "2",              "--tokens",      "1,5",  "--runs",
                                          "1",              "--min-time",    "0",    "--ceiling-size",
                                          "64",             "--dram-bytes",  "1048576", "--quiet"};
  for (const char* fmt : {"--csv", "--json", ""}) {
    auto args = small;
    if (*fmt) args.push_back(fmt);
    EXPECT_EQ(run(args), 0) << fmt;
  }
  EXPECT_NE(run({"moe-layer", "--topk", "65"}), 0);
  EXPECT_NE(run({"moe-layer", "--dtype", "fp8"}), 0);
  EXPECT_NE(run({"moe-layer", "--formats", "dense", "--hidden", "32", "--inter", "16",
                 "--num-experts", "8", "--topk", "2", "--quiet"}),
            0);
  EXPECT_NE(run({"moe-layer", "--v3", "--num-experts", "12"}), 0);  // not a multiple of 8
}

}  // namespace
}  // namespace moeserve
