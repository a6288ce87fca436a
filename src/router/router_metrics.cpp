#include "router/router_metrics.h"

#include "net/prometheus_text.h"

namespace moeserve::router {

void RouterMetrics::record_decision(const std::string& profile) {
  absl::MutexLock lock(&mu_);
  ++decisions_[profile];
}

void RouterMetrics::record_disagg_decision(bool prefill_decode) {
  absl::MutexLock lock(&mu_);
  ++disagg_decisions_[prefill_decode ? "prefill-decode" : "decode-only"];
}

void RouterMetrics::observe_scorer_seconds(const std::string& scorer, double seconds) {
  absl::MutexLock lock(&mu_);
  Histogram& h = scorer_seconds_[scorer];
  for (std::size_t i = 0; i < kScorerBuckets.size(); ++i) {
    if (seconds <= kScorerBuckets[i]) ++h.buckets[i];
  }
  ++h.count;
  h.sum += seconds;
}

void RouterMetrics::record_retry() {
  absl::MutexLock lock(&mu_);
  ++retries_;
}

void RouterMetrics::record_request(const std::string& endpoint) {
  absl::MutexLock lock(&mu_);
  ++requests_[endpoint];
}

void RouterMetrics::record_request_error(int http_status) {
  absl::MutexLock lock(&mu_);
  ++errors_[http_status];
}

uint64_t RouterMetrics::retries() const {
  absl::MutexLock lock(&mu_);
  return retries_;
}

uint64_t RouterMetrics::requests_to(const std::string& endpoint) const {
  absl::MutexLock lock(&mu_);
  auto it = requests_.find(endpoint);
  return it == requests_.end() ? 0 : it->second;
}

uint64_t RouterMetrics::decisions(const std::string& profile) const {
  absl::MutexLock lock(&mu_);
  auto it = decisions_.find(profile);
  return it == decisions_.end() ? 0 : it->second;
}

std::string RouterMetrics::render(const std::vector<EndpointState>& endpoints) const {
  using net::append_family_header;
  using net::append_sample;
  absl::MutexLock lock(&mu_);
  std::string out;
  append_family_header(&out, "moeserve_router_scheduling_decisions_total", "counter",
                       "Scheduling profile runs that chose an endpoint.");
  for (const auto& [p, n] : decisions_) {
    append_sample(&out, "moeserve_router_scheduling_decisions_total", {{"profile", p}},
                  static_cast<double>(n));
  }
  append_family_header(&out, "llm_d_inference_scheduler_disagg_decision_total", "counter",
                       "P/D decisions.");
  for (const auto& [d, n] : disagg_decisions_) {
    append_sample(&out, "llm_d_inference_scheduler_disagg_decision_total", {{"decision_type", d}},
                  static_cast<double>(n));
  }
  append_family_header(&out, "moeserve_router_scorer_duration_seconds", "histogram",
                       "Time spent in each scorer.");
  for (const auto& [s, h] : scorer_seconds_) {
    const net::Labels labels = {{"scorer", s}};
    for (std::size_t i = 0; i < kScorerBuckets.size(); ++i) {
      const std::string le = net::prometheus_number(kScorerBuckets[i]);
      append_sample(&out, "moeserve_router_scorer_duration_seconds_bucket", labels,
                    static_cast<double>(h.buckets[i]), &le);
    }
    const std::string inf = "+Inf";
    append_sample(&out, "moeserve_router_scorer_duration_seconds_bucket", labels,
                  static_cast<double>(h.count), &inf);
    append_sample(&out, "moeserve_router_scorer_duration_seconds_sum", labels, h.sum);
    append_sample(&out, "moeserve_router_scorer_duration_seconds_count", labels,
                  static_cast<double>(h.count));
  }
  append_family_header(&out, "moeserve_router_endpoint_healthy", "gauge",
                       "1 if the endpoint answers its metrics scrapes.");
  for (const auto& ep : endpoints) {
    append_sample(&out, "moeserve_router_endpoint_healthy", {{"endpoint", ep.address}},
                  ep.healthy ? 1 : 0);
  }
  append_family_header(&out, "moeserve_router_retries_total", "counter",
                       "Requests re-sent to another endpoint after a connection failure.");
  append_sample(&out, "moeserve_router_retries_total", {}, static_cast<double>(retries_));
  append_family_header(&out, "moeserve_router_requests_total", "counter",
                       "Requests forwarded, by endpoint.");
  for (const auto& [e, n] : requests_) {
    append_sample(&out, "moeserve_router_requests_total", {{"endpoint", e}},
                  static_cast<double>(n));
  }
  append_family_header(&out, "moeserve_router_request_errors_total", "counter",
                       "Requests the router answered with an error.");
  for (const auto& [code, n] : errors_) {
    append_sample(&out, "moeserve_router_request_errors_total", {{"code", std::to_string(code)}},
                  static_cast<double>(n));
  }
  for (const Collector& c : collectors_) out += c(endpoints);
  return out;
}

void RouterMetrics::add_collector(Collector collector) {
  absl::MutexLock lock(&mu_);
  collectors_.push_back(std::move(collector));
}

}  // namespace moeserve::router
