#include "server/server_metrics.h"

#include "kernels/linear.h"
#include "tokenizer/bpe.h"

namespace moeserve::server {

std::vector<double> buckets_1_2_5(int64_t max_value) {
  std::vector<double> out;
  for (int64_t exp = 1; exp <= max_value && exp > 0; exp *= 10) {
    for (int64_t m : {1, 2, 5}) {
      const int64_t v = m * exp;
      if (v > max_value) return out;
      out.push_back(static_cast<double>(v));
    }
  }
  return out;
}

namespace {

const std::vector<double> kTtftBuckets = {0.001, 0.005, 0.01, 0.02,  0.04,  0.06,  0.08, 0.1,
                                          0.25,  0.5,   0.75, 1.0,   2.5,   5.0,   7.5,  10.0,
                                          20.0,  40.0,  80.0, 160.0, 640.0, 2560.0};
const std::vector<double> kItlBuckets = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,  0.3,  0.4, 0.5,
                                         0.75, 1.0,   2.5,  5.0,   7.5, 10.0, 20.0, 40.0, 80.0};
const std::vector<double> kLatencyBuckets = {0.3,  0.5,   0.8,   1.0,   1.5,   2.0,    2.5,
                                             5.0,  10.0,  15.0,  20.0,  30.0,  40.0,   50.0,
                                             60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
const std::vector<double> kIterationBuckets = {1,   8,    16,   32,   64,   128,  256,
                                               512, 1024, 2048, 4096, 8192, 16384};

}  // namespace

ServerMetrics::ServerMetrics(std::string model_name, int32_t max_model_len,
                             const CacheConfigInfo& cache, int engine_index)
    : labels_{{"model_name", std::move(model_name)}, {"engine", std::to_string(engine_index)}} {
  net::MetricsRegistry& r = registry_;
  r.add_gauge("vllm:num_requests_running", "Number of requests in model execution batches.");
  r.add_gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.");
  r.add_gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.");
  r.add_counter("vllm:prefix_cache_queries",
                "Prefix cache queries, in terms of number of queried tokens.");
  r.add_counter("vllm:prefix_cache_hits",
                "Prefix cache hits, in terms of number of cached tokens.");
  r.add_counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.");
  r.add_counter("vllm:prompt_tokens", "Number of prefill tokens processed.");
  r.add_counter("vllm:generation_tokens", "Number of generation tokens processed.");
  r.add_counter("vllm:request_success", "Count of successfully processed requests.");
  r.add_histogram("vllm:request_prompt_tokens", "Number of prefill tokens processed.",
                  buckets_1_2_5(max_model_len));
  r.add_histogram("vllm:request_generation_tokens", "Number of generation tokens processed.",
                  buckets_1_2_5(max_model_len));
  r.add_histogram("vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.",
                  kIterationBuckets);
  r.add_histogram("vllm:request_max_num_generation_tokens",
                  "Histogram of maximum number of requested generation tokens.",
                  buckets_1_2_5(max_model_len));
  r.add_histogram("vllm:request_params_n", "Histogram of the n request parameter.",
                  {1, 2, 5, 10, 20});
  r.add_histogram("vllm:request_params_max_tokens",
                  "Histogram of the max_tokens request parameter.", buckets_1_2_5(max_model_len));
  r.add_histogram("vllm:time_to_first_token_seconds",
                  "Histogram of time to first token in seconds.", kTtftBuckets);
  r.add_histogram("vllm:inter_token_latency_seconds",
                  "Histogram of inter-token latency in seconds.", kItlBuckets);
  r.add_histogram("vllm:time_per_output_token_seconds",
                  "Histogram of time per output token in seconds.DEPRECATED: Use "
                  "vllm:inter_token_latency_seconds instead.",
                  kItlBuckets);
  r.add_histogram("vllm:request_time_per_output_token_seconds",
                  "Histogram of time_per_output_token_seconds per request.", kItlBuckets);
  r.add_histogram("vllm:e2e_request_latency_seconds",
                  "Histogram of e2e request latency in seconds.", kLatencyBuckets);
  r.add_histogram("vllm:request_queue_time_seconds",
                  "Histogram of time spent in WAITING phase for request.", kLatencyBuckets);
  r.add_histogram("vllm:request_inference_time_seconds",
                  "Histogram of time spent in RUNNING phase for request.", kLatencyBuckets);
  r.add_histogram("vllm:request_prefill_time_seconds",
                  "Histogram of time spent in PREFILL phase for request.", kLatencyBuckets);
  r.add_histogram("vllm:request_decode_time_seconds",
                  "Histogram of time spent in DECODE phase for request.", kLatencyBuckets);
  // Caches that fill with traffic (each is bounded; see its header).
  r.add_gauge("moeserve:prefix_cache_entries",
              "Block hashes held by the prefix cache (at most one per KV block).");
  r.add_gauge("moeserve:linear_primitive_cache_entries",
              "oneDNN matmul primitives cached by the linear layers (per row bucket and weight "
              "shape).");
  r.add_gauge("moeserve:tokenizer_cache_entries",
              "Words in the BPE tokenizer's word cache (at most 65536).");
  // EPLB load statistics (moe/expert_load.h), over the last window of engine steps and summed
  // over the expert-parallel group.
  r.add_gauge("moeserve:eplb_balancedness",
              "Per MoE layer: mean / max tokens routed per expert-parallel rank over the load "
              "window (1 = perfectly balanced).");
  r.add_gauge("moeserve:eplb_expert_tokens",
              "Per MoE layer and logical expert: tokens routed over the load window, summed over "
              "the expert-parallel group.");
  r.add_gauge("vllm:cache_config_info", "Information of the LLMEngine CacheConfig");
  r.gauge_set("vllm:cache_config_info",
              {{"block_size", std::to_string(cache.block_size)},
               {"cache_dtype", cache.cache_dtype},
               {"enable_prefix_caching", cache.enable_prefix_caching ? "True" : "False"},
               {"engine", std::to_string(engine_index)},
               {"kv_cache_memory_bytes", std::to_string(cache.kv_cache_memory_bytes)},
               {"num_gpu_blocks", std::to_string(cache.num_gpu_blocks)},
               {"prefix_caching_hash_algo", cache.prefix_caching_hash_algo}},
              1.0);
  // Series that exist from the start, as prometheus_client shows them once labelled.
  for (engine::FinishReason reason :
       {engine::FinishReason::kStop, engine::FinishReason::kLength, engine::FinishReason::kAbort}) {
    net::Labels l = labels_;
    l.emplace_back("finished_reason", std::string(engine::finish_reason_name(reason)));
    r.counter_add("vllm:request_success", l, 0.0);
  }
}

void ServerMetrics::observe_request(const RequestRecord& rec) {
  net::MetricsRegistry& r = registry_;
  net::Labels l = labels_;
  l.emplace_back("finished_reason", std::string(engine::finish_reason_name(rec.finish_reason)));
  r.counter_add("vllm:request_success", l, 1.0);
  r.histogram_observe("vllm:e2e_request_latency_seconds", labels_, rec.e2e_seconds);
  r.histogram_observe("vllm:request_prompt_tokens", labels_, rec.num_prompt_tokens);
  r.histogram_observe("vllm:request_generation_tokens", labels_, rec.num_generation_tokens);
  r.histogram_observe("vllm:request_max_num_generation_tokens", labels_, rec.max_tokens);
  if (rec.count_params) {
    r.histogram_observe("vllm:request_params_n", labels_, rec.n);
    r.histogram_observe("vllm:request_params_max_tokens", labels_, rec.max_tokens);
  }
  if (rec.ttft_seconds) {
    r.histogram_observe("vllm:time_to_first_token_seconds", labels_, *rec.ttft_seconds);
  }
  if (const auto& p = rec.phase_times) {
    r.histogram_observe("vllm:request_queue_time_seconds", labels_, p->queue_seconds);
    r.histogram_observe("vllm:request_inference_time_seconds", labels_, p->inference_seconds);
    r.histogram_observe("vllm:request_prefill_time_seconds", labels_, p->prefill_seconds);
    r.histogram_observe("vllm:request_decode_time_seconds", labels_, p->decode_seconds);
  }
  double decode_seconds = 0.0;
  for (double s : rec.inter_token_seconds) {
    r.histogram_observe("vllm:inter_token_latency_seconds", labels_, s);
    r.histogram_observe("vllm:time_per_output_token_seconds", labels_, s);
    decode_seconds += s;
  }
  if (rec.num_generation_tokens > 1) {
    r.histogram_observe("vllm:request_time_per_output_token_seconds", labels_,
                        decode_seconds / (rec.num_generation_tokens - 1));
  }
}

std::string ServerMetrics::render(const engine::EngineStats& s) {
  net::MetricsRegistry& r = registry_;
  r.gauge_set("vllm:num_requests_running", labels_, s.num_running);
  r.gauge_set("vllm:num_requests_waiting", labels_, s.num_waiting);
  r.gauge_set("vllm:kv_cache_usage_perc", labels_, s.kv_cache_usage);
  r.counter_set("vllm:prefix_cache_queries", labels_, static_cast<double>(s.prefix_cache_queries));
  r.counter_set("vllm:prefix_cache_hits", labels_, static_cast<double>(s.prefix_cache_hits));
  r.counter_set("vllm:num_preemptions", labels_, static_cast<double>(s.num_preemptions));
  r.counter_set("vllm:prompt_tokens", labels_, static_cast<double>(s.prompt_tokens));
  r.counter_set("vllm:generation_tokens", labels_, static_cast<double>(s.generation_tokens));
  r.gauge_set("moeserve:prefix_cache_entries", labels_,
              static_cast<double>(s.prefix_cache_entries));
  r.gauge_set("moeserve:linear_primitive_cache_entries", labels_,
              static_cast<double>(linear_primitive_cache_entries()));
  r.gauge_set("moeserve:tokenizer_cache_entries", labels_,
              static_cast<double>(BpeModel::cache_entries_in_process()));
  if (const auto& load = s.expert_load) {
    for (size_t l = 0; l < load->layer_ids.size(); ++l) {
      net::Labels ll = labels_;
      ll.emplace_back("layer", std::to_string(load->layer_ids[l]));
      r.gauge_set("moeserve:eplb_balancedness", ll, load->balancedness[l]);
      ll.emplace_back("expert", "");
      for (int64_t e = 0; e < load->num_experts; ++e) {
        ll.back().second = std::to_string(e);
        r.gauge_set("moeserve:eplb_expert_tokens", ll, static_cast<double>(load->tokens[l][e]));
      }
    }
  }
  for (int32_t t : s.iteration_tokens) {
    r.histogram_observe("vllm:iteration_tokens_total", labels_, t);
  }
  return r.render();
}

nlohmann::json expert_load_json(const ExpertLoadSnapshot& load) {
  return {{"layers", load.layer_ids},
          {"num_experts", load.num_experts},
          {"num_ranks", load.num_ranks},
          {"window_size", load.window_size},
          {"steps_in_window", load.steps_in_window},
          {"load", load.tokens},
          {"rank_tokens", load.rank_tokens},
          {"balancedness", load.balancedness}};
}

}  // namespace moeserve::server
