// Per-request measurements and the aggregate metrics of `vllm bench serve`, with its
// definitions, JSON keys and printed wording (so results compare directly):
//  - TTFT: send → first streamed chunk carrying text; ITL: gaps between text chunks;
//    E2EL: send → last chunk.
//  - TPOT per request = (E2EL − TTFT) / (output_tokens − 1); requests with <= 1 output token
//    are left out of TPOT statistics (and count as TPOT 0 for goodput).
//  - mean / median / std (population) / percentiles (numpy's linear interpolation) in ms;
//    statistics of an empty set are 0.
//  - throughput = count / duration; goodput counts requests meeting every SLO given.
//  - peak output tok/s and peak concurrent requests over 1-second buckets.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "nlohmann/json.hpp"

namespace moeserve::bench {

struct RequestOutput {
  bool success = false;
  std::string error;
  double start_time = 0.0;    // seconds since the benchmark started
  double ttft = 0.0;          // seconds
  double latency = 0.0;       // seconds (E2EL)
  std::vector<double> itl;    // seconds
  int64_t prompt_len = 0;     // from usage.prompt_tokens, else the dataset's count
  int64_t output_tokens = 0;  // from usage.completion_tokens, else the number of text chunks
  std::string generated_text;
};

// numpy.percentile(values, p) with the default linear method; 0 for an empty set.
double percentile(std::vector<double> values, double p);
double mean(const std::vector<double>& values);
double median(const std::vector<double>& values);
// numpy.std (population, ddof=0).
double stddev(const std::vector<double>& values);

struct MetricStats {
  double mean_ms = 0, median_ms = 0, std_ms = 0;
  std::vector<std::pair<double, double>> percentiles_ms;  // (p, value)
};

struct BenchmarkMetrics {
  int64_t completed = 0;
  int64_t failed = 0;
  int64_t total_input = 0;
  int64_t total_output = 0;
  double duration_s = 0;
  double request_throughput = 0;
  double request_goodput = 0;
  double output_throughput = 0;
  double total_token_throughput = 0;
  double max_output_tokens_per_s = 0;
  int64_t max_concurrent_requests = 0;
  std::map<std::string, MetricStats> stats;  // "ttft", "tpot", "itl", "e2el"
  std::vector<int64_t> input_lens, output_lens;
  std::vector<double> ttfts, itls_flat;
  std::vector<std::vector<double>> itls;
  std::vector<std::string> errors;
};

// SLOs in milliseconds, keyed "ttft", "tpot", "e2el". Parsed from "ttft:500 tpot:50".
StatusOr<std::map<std::string, double>> parse_goodput(const std::vector<std::string>& specs);

BenchmarkMetrics compute_metrics(const std::vector<RequestOutput>& outputs, double duration_s,
                                 const std::vector<double>& percentiles,
                                 const std::map<std::string, double>& goodput_slo_ms);

// The result dictionary vLLM saves with --save-result (duration, completed, …, mean_ttft_ms,
// p99_itl_ms, input_lens, output_lens, ttfts, itls, errors, …).
nlohmann::ordered_json metrics_to_json(const BenchmarkMetrics& m,
                                       const std::vector<std::string>& percentile_metrics);

struct SummaryOptions {
  std::optional<int64_t> max_concurrency;
  double request_rate = 0;  // <= 0 or inf: not printed
  bool goodput = false;
  std::vector<std::string> percentile_metrics;
};
// The "============ Serving Benchmark Result ============" table.
std::string format_summary(const BenchmarkMetrics& m, const SummaryOptions& o);

}  // namespace moeserve::bench
