// vLLM's Prometheus metrics (vllm/v1/metrics/loggers.py) for one engine: names, help texts,
// labels {model_name, engine="0"} and histogram buckets as vLLM registers them. Gauges and
// engine counters are refreshed from LlmEngine::stats() at scrape time; per-request
// histograms (TTFT, inter-token latency, end-to-end latency, token counts) are observed by
// the server as requests finish, measured from request arrival to output events.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "engine/llm_engine.h"
#include "model/config.h"  // before llm_engine.h, which uses ModelConfig
#include "net/metrics_registry.h"
#include "nlohmann/json.hpp"

namespace moeserve::server {

// What the server saw of one finished engine request.
struct RequestRecord {
  engine::FinishReason finish_reason = engine::FinishReason::kStop;
  double e2e_seconds = 0.0;                 // arrival → finished
  std::optional<double> ttft_seconds;       // arrival → first token
  std::vector<double> inter_token_seconds;  // between successive outputs with tokens
  int32_t num_prompt_tokens = 0;
  int32_t num_generation_tokens = 0;
  int32_t max_tokens = 0;    // the resolved max_tokens parameter
  int32_t n = 1;             // the request's n (once per HTTP request)
  bool count_params = true;  // observe n/max_tokens (first choice only)
  // Engine-side phases (queue, prefill, decode, inference) when the request produced a token.
  std::optional<engine::RequestPhaseTimes> phase_times;
};

// net::Labels of vllm:cache_config_info.
struct CacheConfigInfo {
  int32_t block_size = 16;
  int32_t num_gpu_blocks = 0;
  bool enable_prefix_caching = true;
  std::string prefix_caching_hash_algo = "sha256";
  std::string cache_dtype = "auto";
  int64_t kv_cache_memory_bytes = 0;
};

class ServerMetrics {
 public:
  // `engine_index` is the `engine` label (the data-parallel rank, as vLLM labels it).
  ServerMetrics(std::string model_name, int32_t max_model_len, const CacheConfigInfo& cache,
                int engine_index = 0);

  void observe_request(const RequestRecord& record);
  // Refreshes the engine-side series from `stats` and renders the whole text.
  std::string render(const engine::EngineStats& stats);

  const net::Labels& labels() const { return labels_; }
  net::MetricsRegistry& registry() { return registry_; }

 private:
  net::Labels labels_;
  net::MetricsRegistry registry_;
};

// GET /eplb/load: {"layers": [model layer of each MoE layer], "load": [[tokens per logical
// expert] per MoE layer] (the input `moeserve eplb plan --load` takes), "rank_tokens",
// "balancedness", "num_experts", "num_ranks", "window_size", "steps_in_window"}.
nlohmann::json expert_load_json(const ExpertLoadSnapshot& load);

// vLLM build_1_2_5_buckets: 1, 2, 5, 10, 20, 50, … up to `max_value`.
std::vector<double> buckets_1_2_5(int64_t max_value);

}  // namespace moeserve::server
