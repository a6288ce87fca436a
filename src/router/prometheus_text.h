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

// Merges several expositions (e.g. the /metrics of every data-parallel rank) into one: each
// metric family whose name starts with `name_prefix` appears once, with its HELP and TYPE lines
// from the first text that has it and the sample lines of every text, in order. Samples must
// already differ by their labels (vLLM's `engine` label does that for DP ranks). Families are
// recognised by their `# TYPE` / `# HELP` lines (histogram _bucket/_sum/_count samples belong to
// the family declared before them).
std::string merge_exposition_families(const std::vector<std::string>& texts,
                                      std::string_view name_prefix);

}  // namespace moeserve::router
