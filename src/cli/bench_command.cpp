// `moeserve bench model MODEL [--prompt-len 512] [--decode-tokens 64] [--runs 3] [--json]`:
// prefill and batch-1 decode speed of a checkpoint, each beside this machine's ceiling measured
// in the same run (oneDNN matmul rate for prefill, DRAM read bandwidth for decode).
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <random>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "moe/bench_moe.h"
#include "moe/bench_moe_layer.h"
#include "bench_serve.h"
#include "cli/commands.h"
#include "cli/model_cost.h"
#include "cli/offline_engine.h"
#include "core/cpu_features.h"
#include "core/logging.h"
#include "core/parallel.h"
#include "core/wait_policy.h"
#include "kernels/ceilings.h"
#include "kernels/linear_tuning.h"
#include "model/deepseek.h"
#include "nlohmann/json.hpp"

namespace moeserve {
namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

int bench_model(int argc, char** argv) {
  CLI::App app{"Prefill/decode speed against this machine's ceilings", "moeserve bench model"};
  std::string dir;
  int64_t prompt_len = 512, decode_tokens = 64;
  int runs = 3;
  bool json = false;
  app.add_option("MODEL", dir, "checkpoint directory")->required();
  app.add_option("--prompt-len", prompt_len, "prefill length")->check(CLI::PositiveNumber);
  app.add_option("--decode-tokens", decode_tokens, "decode steps")->check(CLI::PositiveNumber);
  app.add_option("--runs", runs, "repetitions (median reported)")->check(CLI::Range(1, 100));
  app.add_flag("--json", json, "print one JSON object");
  CLI11_PARSE(app, argc, argv);

  auto model = DeepseekModel::load(dir);
  if (!model.ok()) {
    std::fprintf(stderr, "moeserve bench model: %s\n", std::string(model.status().message()).c_str());
    return 1;
  }
  const ModelConfig c = (*model)->config();
  // The kernel chosen per Linear shape: from this machine's table (`moeserve tune`) or built in.
  nlohmann::json kernels = nlohmann::json::array();
  const KernelTable* table = installed_kernel_table();
  for (const LinearShape& s : created_linear_shapes()) {
    const LinearChoice ch = linear_choice(s);
    kernels.push_back({{"n", s.n},
                       {"k", s.k},
                       {"dtype", std::string(dtype_name(s.dtype))},
                       {"gemv", absl::StrCat("gemv_", std::string(isa_name(ch.gemv_isa)))},
                       {"small_m_max", ch.small_m_max},
                       {"source", table != nullptr && table->find(s) ? "tuned" : "default"}});
  }
  const DType weight_dtype = (*model)->weight_dtype();
  std::mt19937 rng(1);
  engine::RequestInputs in;
  in.prompt_token_ids.resize(static_cast<size_t>(prompt_len));
  for (auto& t : in.prompt_token_ids) t = static_cast<int32_t>(rng() % c.vocab_size);
  in.sampling.temperature = 0.0;
  in.params.ignore_eos = true;
  in.max_tokens = static_cast<int32_t>(decode_tokens + 1);
  // The engine `run` uses, without prefix caching so that every run prefills the whole prompt
  // in one step, and without generation_config defaults (the request is greedy anyway).
  OfflineEngineOptions eo;
  eo.max_model_len = prompt_len + decode_tokens + 1;
  eo.max_num_batched_tokens = static_cast<int32_t>(std::max<int64_t>(2048, prompt_len));
  auto eng = make_offline_engine(std::move(*model), nullptr, eo);
  if (!eng.ok()) {
    std::fprintf(stderr, "moeserve bench model: %s\n", std::string(eng.status().message()).c_str());
    return 1;
  }
  int64_t next_id = 0;
  auto generate = [&]() { return generate_one(**eng, absl::StrCat("bench-", next_id++), in); };

  // Warm-up pass: faults the mmap'd weights in, creates oneDNN primitives.
  auto warm = generate();
  if (!warm.ok()) {
    std::fprintf(stderr, "moeserve bench model: %s\n", std::string(warm.status().message()).c_str());
    return 1;
  }
  std::vector<double> prefill_s, decode_s, gemm, dram;
  for (int r = 0; r < runs; ++r) {
    auto res = generate();
    if (!res.ok()) return 1;
    // Prefill: first scheduled -> first token (the prompt's forward and the first sample);
    // decode: the decode_tokens steps after it.
    prefill_s.push_back(res->times.prefill_seconds);
    decode_s.push_back(res->times.decode_seconds / static_cast<double>(decode_tokens));
    // Ceilings interleaved with the model runs so both see the same machine state.
    gemm.push_back(measure_onednn_matmul_gflops(true).gflops);
    dram.push_back(measure_dram_read_gbps());
  }
  const MatmulRate rate_kind = measure_onednn_matmul_gflops(true, 512, 1);
  const double wb = static_cast<double>(dtype_size(weight_dtype));
  const double flops = prefill_flops(c, prompt_len);
  const double ctx_mid = static_cast<double>(prompt_len) + decode_tokens / 2.0;
  const double bytes = decode_bytes(c, static_cast<int64_t>(ctx_mid), wb);
  const double prefill_gflops = flops / median(prefill_s) / 1e9;
  const double decode_gbps = bytes / median(decode_s) / 1e9;
  nlohmann::json out = {
      {"model", dir},
      {"cpu", cpu_model_name()},
      {"threads", num_threads()},
      {"wait_policy", wait_policy_description()},
      {"isa", std::string(isa_name(isa_level()))},
      {"prompt_len", prompt_len},
      {"decode_tokens", decode_tokens},
      {"prefill_seconds", median(prefill_s)},
      {"prefill_tokens_per_s", prompt_len / median(prefill_s)},
      {"prefill_gflops", prefill_gflops},
      {"onednn_matmul_gflops", median(gemm)},
      {"onednn_matmul_dtype", rate_kind.bf16 ? "bf16" : "f32"},
      {"prefill_ratio", prefill_gflops / median(gemm)},
      {"decode_ms_per_token", median(decode_s) * 1e3},
      {"decode_tokens_per_s", 1.0 / median(decode_s)},
      {"decode_bytes_per_token", bytes},
      {"decode_gbps", decode_gbps},
      {"dram_read_gbps", median(dram)},
      {"decode_ratio", decode_gbps / median(dram)},
      {"kernels", kernels},
  };
  if (json) {
    std::cout << out.dump() << std::endl;
  } else {
    std::printf("%s, ISA %s, %d threads\n", cpu_model_name().c_str(),
                std::string(isa_name(isa_level())).c_str(), num_threads());
    for (const auto& k : kernels) {
      std::printf("  linear %6lld x %-6lld %-4s  %-12s up to m=%-3lld then oneDNN  (%s)\n",
                  static_cast<long long>(k["n"].get<int64_t>()),
                  static_cast<long long>(k["k"].get<int64_t>()), k["dtype"].get<std::string>().c_str(),
                  k["gemv"].get<std::string>().c_str(),
                  static_cast<long long>(k["small_m_max"].get<int64_t>()),
                  k["source"].get<std::string>().c_str());
    }
    std::printf("prefill: %lld tokens in %.3f s = %.1f tok/s, %.1f GFLOP/s vs oneDNN %s matmul %.1f GFLOP/s -> %.0f%%\n",
                static_cast<long long>(prompt_len), median(prefill_s), prompt_len / median(prefill_s),
                prefill_gflops, rate_kind.bf16 ? "bf16" : "f32", median(gemm),
                100.0 * prefill_gflops / median(gemm));
    std::printf("decode:  %.2f ms/token = %.2f tok/s, %.2f GB/s (%.0f MB/token) vs DRAM read %.2f GB/s -> %.0f%%\n",
                median(decode_s) * 1e3, 1.0 / median(decode_s), decode_gbps, bytes / 1e6,
                median(dram), 100.0 * decode_gbps / median(dram));
  }
  return 0;
}

}  // namespace

int bench_main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "model") return bench_model(argc - 1, argv + 1);
  if (argc >= 2 && std::string(argv[1]) == "decode") return bench_decode_main(argc - 1, argv + 1);
  if (argc >= 2 && std::string(argv[1]) == "moe") return bench_moe_main(argc - 1, argv + 1);
  if (argc >= 2 && std::string(argv[1]) == "moe-layer") {
    return bench_moe_layer_main(argc - 1, argv + 1);
  }
  if (argc >= 2 && std::string(argv[1]) == "serve") {
    return bench::bench_serve_main(argc - 1, argv + 1);
  }
  std::fprintf(stderr,
               "usage: moeserve bench model MODEL [options]\n"
               "       moeserve bench decode MODEL [--batch 1,8,32 ...]\n"
               "       moeserve bench moe [--ep N --hidden H --topk K --backends ...]\n"
               "       moeserve bench moe-layer [--tokens 1,...,4096 --formats grouped,batched ...]\n"
               "       moeserve bench serve [vllm bench serve options]\n");
  return 2;
}

}  // namespace moeserve
