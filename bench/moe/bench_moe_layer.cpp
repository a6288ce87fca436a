#include "moe/bench_moe_layer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <numeric>
#include <optional>
#include <string>

#include "CLI/CLI.hpp"
#include "core/cpu_features.h"
#include "core/parallel.h"
#include "core/tensor.h"
#include "kernels/ceilings.h"
#include "kernels/linear.h"
#include "kernels/ops.h"
#include "moe/experts.h"
#include "moe/gate.h"
#include "moe/gated_mlp.h"
#include "moe/local_prepare_finalize.h"
#include "nlohmann/json.hpp"

namespace moeserve {

Status MoeLayerShape::validate() const {
  if (hidden <= 0 || inter <= 0 || num_experts <= 0 || num_shared < 0) {
    return absl::InvalidArgumentError(
        "bench moe-layer: --hidden, --inter and --num-experts must be positive, --num-shared "
        ">= 0");
  }
  if (top_k <= 0 || top_k > num_experts) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "bench moe-layer: --topk (%d) must be in [1, --num-experts (%d)]", top_k, num_experts));
  }
  if (grouped_topk && (num_experts % 8 != 0 || top_k > 4 * (num_experts / 8))) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "bench moe-layer: grouped top-k uses 8 groups (top-4): --num-experts (%d) must be a "
        "multiple of 8 and --topk (%d) at most half of them",
        num_experts, top_k));
  }
  if (weight_dtype != DType::kBF16 && weight_dtype != DType::kF32) {
    return absl::InvalidArgumentError("bench moe-layer: --dtype must be bf16 or f32");
  }
  return absl::OkStatus();
}

double MoeLayerShape::gate_flops(int64_t tokens) const {
  return 2.0 * tokens * hidden * num_experts;
}
double MoeLayerShape::routed_flops(int64_t tokens) const {
  return 6.0 * tokens * top_k * hidden * inter;
}
double MoeLayerShape::shared_flops(int64_t tokens) const {
  return 6.0 * tokens * hidden * (num_shared * inter);
}
double MoeLayerShape::expert_bytes(double experts_touched) const {
  return experts_touched * 3.0 * hidden * inter * weight_bytes();
}
double MoeLayerShape::layer_bytes(double experts_touched) const {
  return expert_bytes(experts_touched) +
         (static_cast<double>(num_experts) * hidden + 3.0 * hidden * num_shared * inter) *
             weight_bytes();
}

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Uniform values in [-scale, scale) from a per-tensor xorshift stream: filling a gigabyte of
// weights with std::normal_distribution would take longer than the benchmark.
Tensor random_weight(DType dtype, int64_t rows, int64_t cols, float scale, uint64_t seed) {
  Tensor t = Tensor::empty(dtype, {rows, cols});
  parallel_for(rows, [&](int64_t b, int64_t e) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(b) * 0xBF58476D1CE4E5B9ull + 1;
    std::vector<float> row(static_cast<size_t>(cols));
    for (int64_t r = b; r < e; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        row[c] = scale * (static_cast<float>(s >> 40) * (2.0f / 16777216.0f) - 1.0f);
      }
      if (dtype == DType::kBF16) {
        f32_to_bf16(row.data(), t.data<uint16_t>() + r * cols, cols);
      } else {
        std::copy(row.begin(), row.end(), t.data<float>() + r * cols);
      }
    }
  });
  return t;
}

// The layer's parts, built once; the same sequence MoeLayer::forward runs, timed stage by stage.
struct Layer {
  MoeLayerShape shape;
  GateParams gate;
  Linear gate_linear;
  std::vector<float> bias;  // [E]; zeros (grouped top-k needs one)
  std::optional<GatedMlp> shared;
  std::shared_ptr<ExpertWeights> experts = std::make_shared<ExpertWeights>();
};

StatusOr<std::unique_ptr<Layer>> build_layer(const MoeLayerShape& s, uint32_t seed) {
  auto l = std::make_unique<Layer>();
  l->shape = s;
  const int64_t H = s.hidden, I = s.inter, E = s.num_experts;
  l->gate.num_experts = E;
  l->gate.top_k = s.top_k;
  if (s.grouped_topk) {
    l->gate.num_groups = 8;
    l->gate.topk_groups = 4;
    l->gate.scoring = GateScoring::kSigmoid;
    l->gate.method = GateTopk::kNoauxTc;
    l->gate.renormalize = true;
    l->gate.routed_scaling_factor = 2.5f;
  }
  MS_RETURN_IF_ERROR(l->gate.validate());
  l->bias.assign(E, 0.0f);
  // x ~ U(-1, 1): weight scales keep every activation O(1).
  const float in_scale = 1.0f / std::sqrt(static_cast<float>(H));
  MS_ASSIGN_OR_RETURN(l->gate_linear,
                      Linear::create(random_weight(s.weight_dtype, E, H, in_scale, seed)));
  auto mlp = [&](int64_t inter, uint64_t id) -> StatusOr<GatedMlp> {
    return GatedMlp::create(
        random_weight(s.weight_dtype, inter, H, in_scale, seed + 3 * id + 1),
        random_weight(s.weight_dtype, inter, H, in_scale, seed + 3 * id + 2),
        random_weight(s.weight_dtype, H, inter, 1.0f / std::sqrt(static_cast<float>(inter)),
                      seed + 3 * id + 3));
  };
  l->experts->hidden = H;
  l->experts->experts.reserve(E);
  for (int64_t e = 0; e < E; ++e) {
    MS_ASSIGN_OR_RETURN(GatedMlp m, mlp(I, static_cast<uint64_t>(e) + 1));
    l->experts->experts.push_back(std::move(m));
  }
  if (s.num_shared > 0) {
    MS_ASSIGN_OR_RETURN(GatedMlp m, mlp(s.num_shared * I, 0));
    l->shared = std::move(m);
  }
  return l;
}

struct StageTimes {
  double gate = 0, prepare = 0, experts = 0, finalize = 0, shared = 0;
  double layer() const { return gate + prepare + experts + finalize + shared; }
};

// Per-format runner: the PrepareFinalize/Experts pair of that format and reusable buffers.
struct Runner {
  std::string format;
  std::unique_ptr<LocalPrepareFinalize> pf;
  std::unique_ptr<Experts> experts;
  ExpertBatch batch;
  std::vector<float> logits, weights, expert_out, y, shared_out;
  std::vector<int32_t> ids;

  Runner(const Layer& l, const std::string& f) : format(f) {
    const ActivationFormat af =
        f == "grouped" ? ActivationFormat::kStandard : ActivationFormat::kBatched;
    std::vector<int32_t> map(l.shape.num_experts);
    std::iota(map.begin(), map.end(), 0);
    pf = std::make_unique<LocalPrepareFinalize>(af, std::move(map), l.shape.num_experts);
    if (af == ActivationFormat::kStandard) {
      experts = std::make_unique<GroupedExperts>(l.experts);
    } else {
      experts = std::make_unique<BatchedExperts>(l.experts);
    }
  }

  // One forward of x [T, H]; y [T, H] = routed + shared.
  StatusOr<StageTimes> forward(const Layer& l, const float* x, int64_t T) {
    const int64_t H = l.shape.hidden, E = l.shape.num_experts, K = l.shape.top_k;
    StageTimes st;
    logits.resize(static_cast<size_t>(T * E));  // [T, E]
    ids.resize(static_cast<size_t>(T * K));     // [T, K]
    weights.resize(static_cast<size_t>(T * K));  // [T, K]
    y.resize(static_cast<size_t>(T * H));       // [T, H]
    auto t0 = Clock::now();
    l.gate_linear.forward(x, T, logits.data());
    select_experts(l.gate, logits.data(), l.bias.data(), T, ids.data(), weights.data());
    st.gate = seconds_since(t0);

    t0 = Clock::now();
    RoutedTokens in{x, T, H, ids.data(), weights.data(), K};
    MS_RETURN_IF_ERROR(pf->prepare(in, &batch));
    st.prepare = seconds_since(t0);

    t0 = Clock::now();
    expert_out.resize(static_cast<size_t>(batch.rows() * H));
    experts->apply(batch, expert_out.data(), nullptr);
    st.experts = seconds_since(t0);

    t0 = Clock::now();
    MS_RETURN_IF_ERROR(pf->finalize(batch, expert_out.data(), y.data()));
    st.finalize = seconds_since(t0);

    if (l.shared) {
      t0 = Clock::now();
      shared_out.resize(static_cast<size_t>(T * H));
      l.shared->forward(x, T, shared_out.data());
      axpy(1.0f, shared_out.data(), y.data(), T * H);
      st.shared = seconds_since(t0);
    }
    return st;
  }
};

// One run of one point: iterate (fresh token rows each time, so routing changes) for at least
// min_time_s; per-stage medians over the iterations.
struct RunResult {
  StageTimes median;
  double touched = 0, max_tokens = 0;
};

StatusOr<RunResult> measure_point(const Layer& l, Runner& r, const std::vector<float>& pool,
                                  int64_t pool_rows, int64_t T, double min_time_s,
                                  uint64_t* cursor) {
  const int64_t H = l.shape.hidden;
  auto next_x = [&]() {
    const int64_t span = std::max<int64_t>(1, pool_rows - T + 1);
    const int64_t row = static_cast<int64_t>((*cursor)++ * 7919 % static_cast<uint64_t>(span));
    return pool.data() + row * H;
  };
  // An untimed warm-up where it is cheap (first touch of buffers, allocator growth).
  if (T <= 256) MS_RETURN_IF_ERROR(r.forward(l, next_x(), T).status());
  std::vector<double> g, p, e, f, s;
  double touched = 0, max_tokens = 0;
  const auto start = Clock::now();
  int iters = 0;
  do {
    MS_ASSIGN_OR_RETURN(StageTimes st, r.forward(l, next_x(), T));
    g.push_back(st.gate);
    p.push_back(st.prepare);
    e.push_back(st.experts);
    f.push_back(st.finalize);
    s.push_back(st.shared);
    int32_t mx = 0;
    for (int32_t c : r.batch.expert_num_tokens) {
      touched += c > 0;
      mx = std::max(mx, c);
    }
    max_tokens += mx;
    ++iters;
  } while (seconds_since(start) < min_time_s);
  RunResult res;
  res.median = {median(g), median(p), median(e), median(f), median(s)};
  res.touched = touched / iters;
  res.max_tokens = max_tokens / iters;
  return res;
}

}  // namespace

StatusOr<std::vector<MoeLayerPoint>> run_moe_layer_bench(const MoeLayerBenchOptions& o,
                                                         void (*progress)(const char*)) {
  MS_RETURN_IF_ERROR(o.shape.validate());
  if (o.tokens.empty() || o.formats.empty() || o.runs < 1) {
    return absl::InvalidArgumentError("bench moe-layer: need tokens, formats and runs >= 1");
  }
  for (int64_t T : o.tokens) {
    if (T <= 0) return absl::InvalidArgumentError("bench moe-layer: --tokens must be positive");
  }
  for (const auto& f : o.formats) {
    if (f != "grouped" && f != "batched") {
      return absl::InvalidArgumentError(absl::StrCat("bench moe-layer: unknown format '", f,
                                                     "' (grouped, batched)"));
    }
  }
  MS_ASSIGN_OR_RETURN(auto layer, build_layer(o.shape, o.seed));
  const int64_t H = o.shape.hidden;
  // Token rows to draw from: enough that consecutive small-T iterations route differently.
  const int64_t max_t = *std::max_element(o.tokens.begin(), o.tokens.end());
  const int64_t pool_rows = std::max<int64_t>(max_t, 1024);
  std::vector<float> pool = [&] {
    Tensor t = random_weight(DType::kF32, pool_rows, H, 1.0f, o.seed + 0x51ED);
    return std::vector<float>(t.data<float>(), t.data<float>() + pool_rows * H);
  }();
  std::vector<std::unique_ptr<Runner>> runners;
  for (const auto& f : o.formats) runners.push_back(std::make_unique<Runner>(*layer, f));

  const size_t nt = o.tokens.size(), nf = o.formats.size();
  std::vector<std::vector<RunResult>> per(nt * nf);  // [point][run]
  std::vector<double> gemm, dram;
  bool gemm_bf16 = false;
  uint64_t cursor = 0;
  char line[256];
  for (int run = 0; run < o.runs; ++run) {
    // Ceilings before each sweep, so every run's points see the machine state their
    // ceilings saw (the machine may be shared).
    const MatmulRate rate = measure_onednn_matmul_gflops(true, o.ceiling_size, 3);
    gemm.push_back(rate.gflops);
    gemm_bf16 = rate.bf16;
    dram.push_back(measure_dram_read_gbps(o.dram_bytes, 3));
    if (progress) {
      std::snprintf(line, sizeof(line), "run %d: oneDNN %s matmul %.1f GFLOP/s, DRAM read %.2f GB/s",
                    run + 1, rate.bf16 ? "bf16" : "f32", rate.gflops, dram.back());
      progress(line);
    }
    for (size_t ti = 0; ti < nt; ++ti) {
      for (size_t fi = 0; fi < nf; ++fi) {
        MS_ASSIGN_OR_RETURN(RunResult rr, measure_point(*layer, *runners[fi], pool, pool_rows,
                                                        o.tokens[ti], o.min_time_s, &cursor));
        per[ti * nf + fi].push_back(rr);
        if (progress) {
          std::snprintf(line, sizeof(line), "run %d: %s T=%ld experts %.3f ms layer %.3f ms",
                        run + 1, o.formats[fi].c_str(), static_cast<long>(o.tokens[ti]),
                        rr.median.experts * 1e3, rr.median.layer() * 1e3);
          progress(line);
        }
      }
    }
  }
  std::vector<MoeLayerPoint> points;
  for (size_t ti = 0; ti < nt; ++ti) {
    for (size_t fi = 0; fi < nf; ++fi) {
      const auto& runs = per[ti * nf + fi];
      auto med = [&](auto get) {
        std::vector<double> v;
        for (const RunResult& r : runs) v.push_back(get(r));
        return median(v);
      };
      MoeLayerPoint pt;
      pt.format = o.formats[fi];
      pt.tokens = o.tokens[ti];
      pt.experts_touched = med([](const RunResult& r) { return r.touched; });
      pt.tokens_per_expert =
          static_cast<double>(pt.tokens * o.shape.top_k) / std::max(pt.experts_touched, 1e-9);
      pt.max_tokens_per_expert = med([](const RunResult& r) { return r.max_tokens; });
      pt.gate_s = med([](const RunResult& r) { return r.median.gate; });
      pt.prepare_s = med([](const RunResult& r) { return r.median.prepare; });
      pt.experts_s = med([](const RunResult& r) { return r.median.experts; });
      pt.finalize_s = med([](const RunResult& r) { return r.median.finalize; });
      pt.shared_s = med([](const RunResult& r) { return r.median.shared; });
      pt.layer_s = med([](const RunResult& r) { return r.median.layer(); });
      pt.routed_flops = o.shape.routed_flops(pt.tokens);
      pt.layer_flops = o.shape.layer_flops(pt.tokens);
      pt.expert_bytes = o.shape.expert_bytes(pt.experts_touched);
      pt.layer_bytes = o.shape.layer_bytes(pt.experts_touched);
      pt.gemm_gflops = median(gemm);
      pt.dram_gbps = median(dram);
      pt.gemm_bf16 = gemm_bf16;
      points.push_back(pt);
    }
  }
  return points;
}

namespace {

nlohmann::json point_json(const MoeLayerPoint& p) {
  return {
      {"format", p.format},
      {"tokens", p.tokens},
      {"experts_touched", p.experts_touched},
      {"tokens_per_expert", p.tokens_per_expert},
      {"max_tokens_per_expert", p.max_tokens_per_expert},
      {"gate_ms", p.gate_s * 1e3},
      {"prepare_ms", p.prepare_s * 1e3},
      {"experts_ms", p.experts_s * 1e3},
      {"finalize_ms", p.finalize_s * 1e3},
      {"shared_ms", p.shared_s * 1e3},
      {"layer_ms", p.layer_s * 1e3},
      {"tokens_per_s", p.tokens_per_s()},
      {"routed_flops", p.routed_flops},
      {"layer_flops", p.layer_flops},
      {"expert_bytes", p.expert_bytes},
      {"layer_bytes", p.layer_bytes},
      {"experts_gflops", p.experts_gflops()},
      {"experts_gbps", p.experts_gbps()},
      {"gemm_gflops", p.gemm_gflops},
      {"dram_gbps", p.dram_gbps},
      {"experts_vs_gemm", p.experts_gflops() / p.gemm_gflops},
      {"experts_vs_dram", p.experts_gbps() / p.dram_gbps},
      {"experts_over_bandwidth_bound", p.experts_s / p.experts_bandwidth_bound_s()},
      {"experts_over_roofline",
       p.experts_s / std::max(p.experts_bandwidth_bound_s(), p.experts_compute_bound_s())},
      {"layer_over_roofline",
       p.layer_s / std::max(p.layer_bandwidth_bound_s(), p.layer_compute_bound_s())},
  };
}

void print_progress(const char* line) {
  std::fprintf(stderr, "# %s\n", line);
}

}  // namespace

int bench_moe_layer_main(int argc, char** argv) {
  MoeLayerBenchOptions o;
  std::string dtype = "bf16";
  bool v3 = false, csv = false, json = false, quiet = false;
  int64_t hidden = 0, inter = 0, experts = 0, topk = 0, shared = -1;
  CLI::App app("Whole MoE layer on one rank (gate + prepare + experts + finalize + shared) vs "
               "the oneDNN matmul rate and DRAM read bandwidth",
               "moe-layer");
  app.add_flag("--v3", v3,
               "DeepSeek-V3 shapes (H 7168, I 2048, 256 experts top-8, 1 shared, sigmoid + "
               "noaux_tc); reduce --num-experts where memory is short");
  app.add_option("--hidden", hidden, "H (default 2048)");
  app.add_option("--inter", inter, "moe_intermediate_size I (default 1408)");
  app.add_option("--num-experts", experts, "routed experts E (default 64)");
  app.add_option("--topk", topk, "experts per token K (default 6)");
  app.add_option("--num-shared", shared, "shared experts S (default 2)");
  app.add_option("--dtype", dtype, "weight dtype: bf16 or f32");
  app.add_option("--tokens", o.tokens, "token counts")->delimiter(',');
  app.add_option("--formats", o.formats, "grouped,batched")->delimiter(',');
  app.add_option("--runs", o.runs, "sweeps (medians reported)")->check(CLI::Range(1, 100));
  app.add_option("--min-time", o.min_time_s, "seconds per point and run");
  app.add_option("--ceiling-size", o.ceiling_size, "oneDNN matmul m = n = k");
  app.add_option("--dram-bytes", o.dram_bytes, "DRAM probe buffer size");
  app.add_option("--seed", o.seed);
  app.add_flag("--csv", csv, "CSV rows");
  app.add_flag("--json", json, "one JSON object");
  app.add_flag("--quiet", quiet, "no per-run progress on stderr");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (v3) {
    o.shape = {7168, 2048, 256, 8, 1, true, DType::kBF16};
  }
  if (hidden) o.shape.hidden = hidden;
  if (inter) o.shape.inter = inter;
  if (experts) o.shape.num_experts = experts;
  if (topk) o.shape.top_k = topk;
  if (shared >= 0) o.shape.num_shared = shared;
  if (dtype == "bf16") {
    o.shape.weight_dtype = DType::kBF16;
  } else if (dtype == "f32") {
    o.shape.weight_dtype = DType::kF32;
  } else {
    std::fprintf(stderr, "bench moe-layer: --dtype must be bf16 or f32, got '%s'\n",
                 dtype.c_str());
    return 2;
  }
  if (Status st = o.shape.validate(); !st.ok()) {
    std::fprintf(stderr, "%s\n", std::string(st.message()).c_str());
    return 2;
  }
  auto res = run_moe_layer_bench(o, quiet ? nullptr : print_progress);
  if (!res.ok()) {
    std::fprintf(stderr, "%s\n", std::string(res.status().message()).c_str());
    return 2;
  }
  const auto& s = o.shape;
  const auto& pts = *res;
  const char* gemm_kind = !pts.empty() && pts[0].gemm_bf16 ? "bf16" : "f32";
  if (json) {
    nlohmann::json out = {
        {"hidden", s.hidden},         {"inter", s.inter},
        {"num_experts", s.num_experts}, {"top_k", s.top_k},
        {"num_shared", s.num_shared}, {"weight_dtype", std::string(dtype_name(s.weight_dtype))},
        {"threads", num_threads()},   {"isa", std::string(isa_name(isa_level()))},
        {"runs", o.runs},             {"gemm_dtype", gemm_kind},
        {"points", nlohmann::json::array()}};
    for (const auto& p : pts) out["points"].push_back(point_json(p));
    std::cout << out.dump() << std::endl;
    return 0;
  }
  if (csv) {
    std::printf(
        "format,tokens,experts_touched,tokens_per_expert,max_tokens_per_expert,gate_ms,"
        "prepare_ms,experts_ms,finalize_ms,shared_ms,layer_ms,tokens_per_s,experts_gflops,"
        "gemm_gflops,experts_vs_gemm,experts_gbps,dram_gbps,experts_vs_dram,"
        "experts_over_bandwidth_bound,experts_over_roofline,layer_over_roofline\n");
    for (const auto& p : pts) {
      const nlohmann::json j = point_json(p);
      std::printf("%s,%ld,%.2f,%.2f,%.1f,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%.1f,%.2f,%.2f,%.3f,%.3f,"
                  "%.3f,%.3f,%.3f,%.3f,%.3f\n",
                  p.format.c_str(), static_cast<long>(p.tokens), p.experts_touched,
                  p.tokens_per_expert, p.max_tokens_per_expert, p.gate_s * 1e3,
                  p.prepare_s * 1e3, p.experts_s * 1e3, p.finalize_s * 1e3, p.shared_s * 1e3,
                  p.layer_s * 1e3, p.tokens_per_s(), p.experts_gflops(), p.gemm_gflops,
                  j["experts_vs_gemm"].get<double>(), p.experts_gbps(), p.dram_gbps,
                  j["experts_vs_dram"].get<double>(),
                  j["experts_over_bandwidth_bound"].get<double>(),
                  j["experts_over_roofline"].get<double>(),
                  j["layer_over_roofline"].get<double>());
    }
    return 0;
  }
  std::printf("# H=%ld I=%ld E=%ld K=%ld shared=%ld weights=%s threads=%d isa=%s runs=%d\n",
              static_cast<long>(s.hidden), static_cast<long>(s.inter),
              static_cast<long>(s.num_experts), static_cast<long>(s.top_k),
              static_cast<long>(s.num_shared), std::string(dtype_name(s.weight_dtype)).c_str(),
              num_threads(), std::string(isa_name(isa_level())).c_str(), o.runs);
  if (!pts.empty()) {
    std::printf("# ceilings (median of runs): oneDNN %s matmul %.1f GFLOP/s, DRAM read %.2f GB/s\n",
                gemm_kind, pts[0].gemm_gflops, pts[0].dram_gbps);
  }
  std::printf("%-7s %5s %6s %6s %8s %8s %9s %8s %8s %9s %9s %7s %6s %7s %6s %6s %6s\n", "format",
              "T", "tok/E", "E_hit", "gate_ms", "prep_ms", "exp_ms", "fin_ms", "shr_ms",
              "layer_ms", "tok/s", "GFLOP/s", "%gemm", "GB/s", "%dram", "x_bw", "x_roof");
  for (const auto& p : pts) {
    const nlohmann::json j = point_json(p);
    std::printf("%-7s %5ld %6.1f %6.1f %8.3f %8.3f %9.3f %8.3f %8.3f %9.3f %9.1f %7.2f %5.0f%% "
                "%7.2f %5.0f%% %6.2f %6.2f\n",
                p.format.c_str(), static_cast<long>(p.tokens), p.tokens_per_expert,
                p.experts_touched, p.gate_s * 1e3, p.prepare_s * 1e3, p.experts_s * 1e3,
                p.finalize_s * 1e3, p.shared_s * 1e3, p.layer_s * 1e3, p.tokens_per_s(),
                p.experts_gflops(), 100 * j["experts_vs_gemm"].get<double>(), p.experts_gbps(),
                100 * j["experts_vs_dram"].get<double>(),
                j["experts_over_bandwidth_bound"].get<double>(),
                j["experts_over_roofline"].get<double>());
  }
  return 0;
}

}  // namespace moeserve
