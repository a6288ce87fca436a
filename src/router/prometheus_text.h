// A parser for the Prometheus text exposition format (the lines a vLLM /metrics returns) and
// the extraction of the engine metrics the router scores with. Pure functions.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "router/endpoint.h"

namespace moeserve::router {

struct PromSample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

// Parses every sample line; comments and blank lines are skipped. A malformed line is an error
// naming its line number.
StatusOr<std::vector<PromSample>> parse_prometheus_text(std::string_view text);

// vllm:num_requests_waiting, vllm:num_requests_running, vllm:kv_cache_usage_perc (falling back
// to vllm:gpu_cache_usage_perc), vllm:cache_config_info{block_size, num_gpu_blocks}. Several
// samples of one gauge (DP engines behind one port) are summed; usage takes the maximum.
// Errors when none of the request-count gauges is present.
StatusOr<EndpointMetrics> extract_engine_metrics(const std::vector<PromSample>& samples);

}  // namespace moeserve::router
