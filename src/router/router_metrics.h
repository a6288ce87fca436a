// The router's own Prometheus metrics (text exposition format 0.0.4, written with
// net/prometheus_text.h). Thread-safe: every method locks an internal mutex.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

#include "router/endpoint.h"

namespace moeserve::router {

class RouterMetrics final {
 public:
  void record_decision(const std::string& profile);
  void record_disagg_decision(bool prefill_decode);
  void observe_scorer_seconds(const std::string& scorer, double seconds);
  void record_retry();
  void record_request(const std::string& endpoint);
  void record_request_error(int http_status);

  uint64_t retries() const;
  uint64_t requests_to(const std::string& endpoint) const;
  uint64_t decisions(const std::string& profile) const;

  // Another component's metrics, appended to render() (complete exposition text with HELP and
  // TYPE lines). Setup only, before the metrics are served; the collector must be thread-safe.
  using Collector = std::function<std::string(const std::vector<EndpointState>& endpoints)>;
  void add_collector(Collector collector);

  // All metrics, plus one health gauge per endpoint from `endpoints`.
  std::string render(const std::vector<EndpointState>& endpoints) const;

 private:
  static constexpr std::array<double, 10> kScorerBuckets = {1e-6, 5e-6, 1e-5, 5e-5, 1e-4,
                                                            5e-4, 1e-3, 5e-3, 1e-2, 1e-1};
  struct Histogram {
    std::array<uint64_t, kScorerBuckets.size()> buckets{};
    uint64_t count = 0;
    double sum = 0;
  };

  mutable absl::Mutex mu_;
  std::map<std::string, uint64_t> decisions_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, uint64_t> disagg_decisions_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Histogram> scorer_seconds_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, uint64_t> requests_ ABSL_GUARDED_BY(mu_);
  std::map<int, uint64_t> errors_ ABSL_GUARDED_BY(mu_);
  uint64_t retries_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<Collector> collectors_ ABSL_GUARDED_BY(mu_);
};

}  // namespace moeserve::router
