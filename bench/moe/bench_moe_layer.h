// `moeserve bench moe-layer`: one whole MoE layer on one rank (gate -> prepare -> experts ->
// finalize, then the shared experts), for each experts format (grouped = standard layout,
// batched = padded [E, max_tokens, H] slabs) at 1..4096 tokens, beside this machine's oneDNN
// matmul rate and DRAM read bandwidth measured in the same run (once per run, before its
// sweep). Weights are random (bf16 by default, the serving dtype); random gate weights route
// roughly uniformly.
//
// Counting (the same formulas the tests check):
//   routed FLOPs   = 6·T·K·H·I         (gate, up and down GEMMs of every (token, k) pair)
//   shared FLOPs   = 6·T·H·(S·I)       (S shared experts run as one MLP of width S·I)
//   gate FLOPs     = 2·T·H·E
//   expert bytes   = touched·3·H·I·w   (weights of the experts with >= 1 token; w = bytes
//                                       per weight element); activations are not counted
//   layer bytes    = expert bytes + (E·H + 3·H·S·I)·w
// Bounds: compute = FLOPs / matmul rate, bandwidth = bytes / DRAM read rate, roofline = the
// larger of the two. Times are medians over iterations within a run, then over runs.
// Threading: call from one thread; uses every OpenMP thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"

namespace moeserve {

// Shapes of one DeepSeek MoE layer (defaults: DeepSeek-V2-Lite).
struct MoeLayerShape {
  int64_t hidden = 2048;      // H
  int64_t inter = 1408;       // I, moe_intermediate_size
  int64_t num_experts = 64;   // E, routed experts
  int64_t top_k = 6;          // K
  int64_t num_shared = 2;     // S, n_shared_experts (0: none)
  bool grouped_topk = false;  // V3: sigmoid + noaux_tc over 8 groups (top-4 groups)
  DType weight_dtype = DType::kBF16;

  Status validate() const;
  double weight_bytes() const { return static_cast<double>(dtype_size(weight_dtype)); }
  double gate_flops(int64_t tokens) const;
  double routed_flops(int64_t tokens) const;
  double shared_flops(int64_t tokens) const;
  double layer_flops(int64_t tokens) const {
    return gate_flops(tokens) + routed_flops(tokens) + shared_flops(tokens);
  }
  double expert_bytes(double experts_touched) const;
  double layer_bytes(double experts_touched) const;
};

struct MoeLayerBenchOptions {
  MoeLayerShape shape;
  std::vector<int64_t> tokens = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096};
  std::vector<std::string> formats = {"grouped", "batched"};
  int runs = 3;               // sweeps; ceilings measured before each
  double min_time_s = 0.3;    // per point and run: iterate at least this long
  int64_t ceiling_size = 2048;           // oneDNN matmul m = n = k
  int64_t dram_bytes = int64_t{1} << 29;  // DRAM probe buffer
  uint32_t seed = 1;
};

// One (format, tokens) point: medians over runs.
struct MoeLayerPoint {
  std::string format;
  int64_t tokens = 0;
  double experts_touched = 0;    // mean over iterations of experts with >= 1 token
  double tokens_per_expert = 0;  // T·K / experts_touched
  double max_tokens_per_expert = 0;  // mean over iterations (batched padding)
  // Seconds per forward (median).
  double gate_s = 0, prepare_s = 0, experts_s = 0, finalize_s = 0, shared_s = 0, layer_s = 0;
  double routed_flops = 0, layer_flops = 0, expert_bytes = 0, layer_bytes = 0;
  double gemm_gflops = 0;  // median over runs of the matmul ceiling
  double dram_gbps = 0;    // median over runs of the DRAM read ceiling
  bool gemm_bf16 = false;

  double tokens_per_s() const { return tokens / layer_s; }
  double experts_gflops() const { return routed_flops / experts_s / 1e9; }
  double experts_gbps() const { return expert_bytes / experts_s / 1e9; }
  double experts_compute_bound_s() const { return routed_flops / (gemm_gflops * 1e9); }
  double experts_bandwidth_bound_s() const { return expert_bytes / (dram_gbps * 1e9); }
  double layer_compute_bound_s() const { return layer_flops / (gemm_gflops * 1e9); }
  double layer_bandwidth_bound_s() const { return layer_bytes / (dram_gbps * 1e9); }
};

// Runs the sweep. `progress` (may be null) receives one line per finished point and run.
StatusOr<std::vector<MoeLayerPoint>> run_moe_layer_bench(const MoeLayerBenchOptions& o,
                                                         void (*progress)(const char*) = nullptr);

// argv[0] is the subcommand name. Returns a process exit code; prints a table, CSV or JSON.
int bench_moe_layer_main(int argc, char** argv);

}  // namespace moeserve
