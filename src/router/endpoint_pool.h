// The set of endpoints the router schedules over, with their scraped metrics, health and the
// router's own count of in-flight requests per endpoint.
//
// Health: an endpoint starts healthy; `failure_threshold` consecutive failures (scrapes or
// proxy connection failures) mark it unhealthy, one success marks it healthy again. Unhealthy
// endpoints are left out of healthy_snapshot(), so the scheduler does not see them.
//
// Thread-safety: every method locks an internal absl::Mutex; call from any thread. The removal
// callback runs with the lock released.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "core/status.h"
#include "router/endpoint.h"

namespace moeserve::router {

// Splits "host:port" (IPv6 hosts may be bracketed: "[::1]:8000").
StatusOr<std::pair<std::string, std::string>> split_host_port(const std::string& address);

// "host:port[@role][,host:port[@role]...]"; the optional role becomes the llm-d.ai/role label.
StatusOr<std::vector<EndpointSpec>> parse_endpoint_list(std::string_view list);

// YAML or JSON: either a list, or a mapping with key `endpoints` holding a list. Each entry is
// a "host:port" string or a mapping {address: "host:port", role?: r, model?: m,
// labels?: {k: v}}.
StatusOr<std::vector<EndpointSpec>> parse_endpoints_document(std::string_view text);
StatusOr<std::vector<EndpointSpec>> load_endpoints_file(const std::string& path);

class EndpointPool final {
 public:
  explicit EndpointPool(int failure_threshold = 3) : failure_threshold_(failure_threshold) {}

  // Replaces the endpoint set; endpoints already known keep their metrics and counters.
  // Removed endpoints are reported to the removal callback.
  void set_endpoints(const std::vector<EndpointSpec>& specs) ABSL_LOCKS_EXCLUDED(mu_);
  void set_removal_callback(std::function<void(const std::string&)> cb) ABSL_LOCKS_EXCLUDED(mu_);

  std::vector<EndpointState> snapshot() const ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<EndpointState> healthy_snapshot() const ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<std::string> addresses() const ABSL_LOCKS_EXCLUDED(mu_);
  bool contains(const std::string& address) const ABSL_LOCKS_EXCLUDED(mu_);

  void record_success(const std::string& address, const EndpointMetrics& metrics)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Returns true when this failure turned the endpoint unhealthy.
  bool record_failure(const std::string& address) ABSL_LOCKS_EXCLUDED(mu_);
  void add_active(const std::string& address, int64_t delta) ABSL_LOCKS_EXCLUDED(mu_);
  int64_t active(const std::string& address) const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Entry {
    EndpointState state;
    int consecutive_failures = 0;
  };

  const int failure_threshold_;
  mutable absl::Mutex mu_;
  std::map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::function<void(const std::string&)> on_removed_ ABSL_GUARDED_BY(mu_);
};

}  // namespace moeserve::router
