#include "router/engine_metrics.h"

#include <algorithm>
#include <cstdlib>

namespace moeserve::router {

StatusOr<EndpointMetrics> extract_engine_metrics(const std::vector<net::PromSample>& samples) {
  EndpointMetrics m;
  bool has_waiting = false, has_running = false, has_kv = false;
  double gpu_usage = -1;
  for (const auto& s : samples) {
    if (s.name == "vllm:num_requests_waiting") {
      m.waiting += s.value;
      has_waiting = true;
    } else if (s.name == "vllm:num_requests_running") {
      m.running += s.value;
      has_running = true;
    } else if (s.name == "vllm:kv_cache_usage_perc") {
      m.kv_usage = has_kv ? std::max(m.kv_usage, s.value) : s.value;
      has_kv = true;
    } else if (s.name == "vllm:gpu_cache_usage_perc") {
      gpu_usage = std::max(gpu_usage, s.value);
    } else if (s.name == "vllm:cache_config_info") {
      auto bs = s.labels.find("block_size");
      if (bs != s.labels.end()) m.block_size = std::strtoll(bs->second.c_str(), nullptr, 10);
      auto nb = s.labels.find("num_gpu_blocks");
      if (nb != s.labels.end() && nb->second != "None") {
        m.num_gpu_blocks = std::strtoll(nb->second.c_str(), nullptr, 10);
      }
    }
  }
  if (!has_kv && gpu_usage >= 0) m.kv_usage = gpu_usage;
  if (!has_waiting && !has_running) {
    return absl::NotFoundError(
        "metrics have neither vllm:num_requests_waiting nor vllm:num_requests_running");
  }
  m.valid = true;
  return m;
}

}  // namespace moeserve::router
