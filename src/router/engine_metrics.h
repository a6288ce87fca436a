// The engine metrics the router scores with, read from a scraped vLLM /metrics exposition
// (net/prometheus_text.h parses it). Pure functions.
#pragma once

#include <vector>

#include "core/status.h"
#include "net/prometheus_text.h"
#include "router/endpoint.h"

namespace moeserve::router {

// vllm:num_requests_waiting, vllm:num_requests_running, vllm:kv_cache_usage_perc (falling back
// to vllm:gpu_cache_usage_perc), vllm:cache_config_info{block_size, num_gpu_blocks}. Several
// samples of one gauge (DP engines behind one port) are summed; usage takes the maximum.
// Errors when none of the request-count gauges is present.
StatusOr<EndpointMetrics> extract_engine_metrics(const std::vector<net::PromSample>& samples);

}  // namespace moeserve::router
