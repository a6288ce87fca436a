// Endpoint: one model-server address the router can send requests to, with its labels and the
// latest metrics scraped from it. Plain data; the pool hands out copies (snapshots), so no
// locking is needed by readers of an EndpointState.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace moeserve::router {

// llm-d's role label (filter/bylabel): decode, prefill, prefill-decode, both, encode, ...
inline constexpr char kRoleLabel[] = "llm-d.ai/role";
inline constexpr char kModelLabel[] = "llm-d.ai/model";

// What the operator declares about an endpoint (flag or endpoints file).
struct EndpointSpec {
  std::string address;  // "host:port"
  std::map<std::string, std::string> labels;

  bool operator==(const EndpointSpec&) const = default;
};

// Scraped from the endpoint's /metrics (vLLM metric names, serving-conventions §2).
struct EndpointMetrics {
  bool valid = false;          // at least one successful scrape
  double waiting = 0;          // vllm:num_requests_waiting
  double running = 0;          // vllm:num_requests_running
  double kv_usage = 0;         // vllm:kv_cache_usage_perc (0..1)
  int64_t block_size = 0;      // vllm:cache_config_info{block_size}
  int64_t num_gpu_blocks = 0;  // vllm:cache_config_info{num_gpu_blocks}
};

// A snapshot of one endpoint as the scheduler sees it.
struct EndpointState {
  std::string address;
  std::map<std::string, std::string> labels;
  EndpointMetrics metrics;
  int64_t active_requests = 0;  // in flight through this router
  bool healthy = true;

  // Value of `key` or "" when absent.
  const std::string& label(const std::string& key) const {
    static const std::string kEmpty;
    auto it = labels.find(key);
    return it == labels.end() ? kEmpty : it->second;
  }
  bool has_label(const std::string& key) const { return labels.count(key) != 0; }
};

}  // namespace moeserve::router
