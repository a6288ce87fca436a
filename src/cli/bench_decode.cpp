// `moeserve bench decode MODEL [--batch 1,8,32] [--prompt-len 64] [--decode-tokens 32]`:
// batched-decode throughput through the real engine (scheduler, paged latent cache, sampler)
// at several batch sizes, as a speed-up over batch 1 and beside the bound of its step: the
// lower of the bytes bound (weights the step must read, with the expected number of distinct
// routed experts for that batch, over the DRAM read bandwidth) and the compute bound (the
// step's FLOPs over the oneDNN matmul rate), both ceilings measured in the same run.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <random>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "cli/commands.h"
#include "cli/model_cost.h"
#include "core/cpu_features.h"
#include "core/parallel.h"
#include "core/wait_policy.h"
#include "core/dtype.h"
#include "engine/llm_engine.h"
#include "kernels/ceilings.h"
#include "model/deepseek.h"
#include "nlohmann/json.hpp"

namespace moeserve {
namespace {

using Clock = std::chrono::steady_clock;

// Collects the outputs of one batch of requests: when every request has its first token
// (prefill done) and when the last one finished.
class BatchSink : public engine::OutputSink {
 public:
  explicit BatchSink(int expected) : remaining_(expected), waiting_first_(expected) {}

  void on_output(engine::EngineOutput o) ABSL_LOCKS_EXCLUDED(mu_) override {
    absl::MutexLock lk(&mu_);
    if (!o.token_ids.empty()) {
      tokens_ += static_cast<int64_t>(o.token_ids.size());
      if (o.num_output_tokens == static_cast<int32_t>(o.token_ids.size()) &&
          --waiting_first_ == 0) {
        all_first_ = Clock::now();
        tokens_at_first_ = tokens_;
      }
    }
    if (o.finished) {
      if (o.finish_reason == engine::FinishReason::kError ||
          o.finish_reason == engine::FinishReason::kAbort) {
        error_ =
            o.error.empty() ? std::string(engine::finish_reason_name(*o.finish_reason)) : o.error;
      }
      if (--remaining_ == 0) end_ = Clock::now();
    }
  }

  // Waits for every request; returns decode tokens/s after the last first token.
  StatusOr<double> wait() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lk(&mu_);
    mu_.Await(absl::Condition(this, &BatchSink::all_finished));
    if (!error_.empty()) return absl::InternalError(error_);
    const double s = std::chrono::duration<double>(end_ - all_first_).count();
    if (waiting_first_ > 0 || s <= 0) return absl::InternalError("no decode steps were timed");
    return static_cast<double>(tokens_ - tokens_at_first_) / s;
  }

 private:
  bool all_finished() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return remaining_ == 0; }

  absl::Mutex mu_;
  int remaining_ ABSL_GUARDED_BY(mu_);
  int waiting_first_ ABSL_GUARDED_BY(mu_);
  int64_t tokens_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t tokens_at_first_ ABSL_GUARDED_BY(mu_) = 0;
  Clock::time_point all_first_ ABSL_GUARDED_BY(mu_);
  Clock::time_point end_ ABSL_GUARDED_BY(mu_);
  std::string error_ ABSL_GUARDED_BY(mu_);
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int bench_decode_main(int argc, char** argv) {
  CLI::App app{"Batched-decode throughput through the engine, against its bytes and compute bounds",
               "moeserve bench decode"};
  std::string dir;
  std::vector<int> batches = {1, 2, 4, 8, 16, 32};
  int64_t prompt_len = 64, decode_tokens = 32;
  int runs = 3;
  bool json = false;
  app.add_option("MODEL", dir, "checkpoint directory")->required();
  app.add_option("--batch", batches, "comma-separated batch sizes (default 1,2,4,8,16,32)")
      ->delimiter(',')
      ->check(CLI::Range(1, 4096));
  app.add_option("--prompt-len", prompt_len, "prompt tokens per sequence")
      ->check(CLI::Range(1, 1 << 16));
  app.add_option("--decode-tokens", decode_tokens, "decode steps timed per sequence")
      ->check(CLI::Range(1, 1 << 16));
  app.add_option("--runs", runs, "repetitions per batch size (median reported)")
      ->check(CLI::Range(1, 100));
  app.add_flag("--json", json, "print one JSON object");
  CLI11_PARSE(app, argc, argv);
  auto fail = [](const Status& st) {
    std::fprintf(stderr, "moeserve bench decode: %s\n", std::string(st.message()).c_str());
    return 1;
  };
  const int max_batch = *std::max_element(batches.begin(), batches.end());

  auto model = DeepseekModel::load(dir);
  if (!model.ok()) return fail(model.status());
  const ModelConfig mc = (*model)->config();
  const double wb = static_cast<double>(dtype_size((*model)->weight_dtype()));
  const int64_t seq_len = prompt_len + decode_tokens + 1;
  if (seq_len > mc.max_position_embeddings) {
    return fail(absl::InvalidArgumentError("--prompt-len + --decode-tokens exceed the context"));
  }

  engine::EngineConfig ec;
  ec.scheduler.max_num_seqs = max_batch;
  ec.scheduler.max_model_len = static_cast<int32_t>(seq_len);
  // Every batch's prompts fit one step, so the timed steps are pure decode.
  ec.scheduler.max_num_batched_tokens =
      static_cast<int32_t>(std::max<int64_t>(2048, prompt_len * max_batch));
  ec.cache.enable_prefix_caching = false;
  const int64_t blocks_per_seq = (seq_len + ec.cache.block_size - 1) / ec.cache.block_size;
  ec.cache.num_blocks = static_cast<int32_t>(blocks_per_seq * max_batch + 2);
  ec.sampler_seed = 1;
  auto eng = engine::LlmEngine::create(ec, std::move(*model), nullptr);
  if (!eng.ok()) return fail(eng.status());

  std::mt19937 rng(7);
  int64_t next_id = 0;
  // One batch: `b` sequences of fresh random prompts, greedy, exactly decode_tokens + 1 tokens.
  auto run_batch = [&](int b) -> StatusOr<double> {
    auto sink = std::make_shared<BatchSink>(b);
    for (int i = 0; i < b; ++i) {
      engine::RequestInputs in;
      in.prompt_token_ids.resize(static_cast<size_t>(prompt_len));
      for (auto& t : in.prompt_token_ids) t = static_cast<int32_t>(rng() % mc.vocab_size);
      in.sampling.temperature = 0.0;
      in.max_tokens = static_cast<int32_t>(decode_tokens + 1);
      in.params.ignore_eos = true;
      MS_ASSIGN_OR_RETURN(engine::SamplingParams params, (*eng)->input_processor().process(in));
      engine::NewRequest r;
      r.request_id = absl::StrCat("bench-", next_id++);
      r.prompt_token_ids = std::move(in.prompt_token_ids);
      r.params = std::move(params);
      r.sink = sink;
      MS_RETURN_IF_ERROR((*eng)->add_request(std::move(r)));
    }
    return sink->wait();
  };
  // Warm-up: faults the mmap'd weights in (the largest batch touches the most experts).
  if (auto w = run_batch(max_batch); !w.ok()) return fail(w.status());

  nlohmann::json rows = nlohmann::json::array();
  double base_rate = 0;
  const int64_t ctx_mid = prompt_len + decode_tokens / 2;
  for (int b : batches) {
    std::vector<double> rate, dram, gemm;
    for (int r = 0; r < runs; ++r) {
      auto tps = run_batch(b);
      if (!tps.ok()) return fail(tps.status());
      rate.push_back(*tps);
      // Ceilings interleaved with the runs so both see the same machine state.
      dram.push_back(measure_dram_read_gbps());
      gemm.push_back(measure_onednn_matmul_gflops(true, 1024, 3).gflops);
    }
    const double tps = median(rate), gbps = median(dram), gflops = median(gemm);
    const double step_bytes = decode_step_bytes(mc, b, ctx_mid, wb);
    const double bytes_tps = static_cast<double>(b) * gbps * 1e9 / step_bytes;
    const double compute_tps = gflops * 1e9 / decode_token_flops(mc, ctx_mid);
    const double bound_tps = std::min(bytes_tps, compute_tps);
    if (b == 1) base_rate = tps;
    rows.push_back({{"batch", b},
                    {"decode_tokens_per_s", tps},
                    {"step_ms", 1e3 * b / tps},
                    {"experts_touched_per_layer", expected_experts_touched(mc, b)},
                    {"step_bytes", step_bytes},
                    {"dram_read_gbps", gbps},
                    {"bytes_bound_tokens_per_s", bytes_tps},
                    {"matmul_gflops", gflops},
                    {"compute_bound_tokens_per_s", compute_tps},
                    {"bound", bytes_tps <= compute_tps ? "bytes" : "compute"},
                    {"bound_tokens_per_s", bound_tps},
                    {"ratio_to_bound", tps / bound_tps}});
  }
  for (auto& r : rows) {
    r["speedup_over_batch1"] =
        base_rate > 0 ? r["decode_tokens_per_s"].get<double>() / base_rate : 0.0;
  }
  nlohmann::json out = {{"model", dir},
                        {"threads", num_threads()},
                        {"wait_policy", wait_policy_description()},
                        {"isa", std::string(isa_name(isa_level()))},
                        {"prompt_len", prompt_len},
                        {"decode_tokens", decode_tokens},
                        {"rows", rows}};
  if (json) {
    std::cout << out.dump() << std::endl;
    return 0;
  }
  std::printf("%6s %12s %9s %8s %8s %9s %10s %9s %10s %8s %7s %9s\n", "batch",
              "decode tok/s", "step ms", "experts", "MB/step", "DRAM GB/s", "bytes tok/s",
              "GEMM GF/s", "flops tok/s", "bound", "ratio", "speed-up");
  for (const auto& r : rows) {
    std::printf("%6d %12.2f %9.1f %8.1f %8.0f %9.2f %10.2f %9.1f %10.2f %8s %6.0f%% %8.2fx\n",
                r["batch"].get<int>(), r["decode_tokens_per_s"].get<double>(),
                r["step_ms"].get<double>(), r["experts_touched_per_layer"].get<double>(),
                r["step_bytes"].get<double>() / 1e6, r["dram_read_gbps"].get<double>(),
                r["bytes_bound_tokens_per_s"].get<double>(), r["matmul_gflops"].get<double>(),
                r["compute_bound_tokens_per_s"].get<double>(),
                r["bound"].get<std::string>().c_str(), 100.0 * r["ratio_to_bound"].get<double>(),
                r["speedup_over_batch1"].get<double>());
  }
  if (base_rate == 0) std::printf("(speed-up needs batch 1 in --batch)\n");
  return 0;
}

}  // namespace moeserve
