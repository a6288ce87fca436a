#include "router/router_metrics.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace moeserve::router {

std::string escape_label(const std::string& v) {
  return absl::StrReplaceAll(v, {{"\\", "\\\\"}, {"\"", "\\\""}, {"\n", "\\n"}});
}

void RouterMetrics::record_decision(const std::string& profile) {
  std::lock_guard<std::mutex> lock(mu_);
  ++decisions_[profile];
}

void RouterMetrics::record_disagg_decision(bool prefill_decode) {
  std::lock_guard<std::mutex> lock(mu_);
  ++disagg_decisions_[prefill_decode ? "prefill-decode" : "decode-only"];
}

void RouterMetrics::observe_scorer_seconds(const std::string& scorer, double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  Histogram& h = scorer_seconds_[scorer];
  for (std::size_t i = 0; i < kScorerBuckets.size(); ++i) {
    if (seconds <= kScorerBuckets[i]) ++h.buckets[i];
  }
  ++h.count;
  h.sum += seconds;
}

void RouterMetrics::record_retry() {
  std::lock_guard<std::mutex> lock(mu_);
  ++retries_;
}

void RouterMetrics::record_request(const std::string& endpoint) {
  std::lock_guard<std::mutex> lock(mu_);
  ++requests_[endpoint];
}

void RouterMetrics::record_request_error(int http_status) {
  std::lock_guard<std::mutex> lock(mu_);
  ++errors_[http_status];
}

uint64_t RouterMetrics::retries() const {
  std::lock_guard<std::mutex> lock(mu_);
  return retries_;
}

uint64_t RouterMetrics::requests_to(const std::string& endpoint) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = requests_.find(endpoint);
  return it == requests_.end() ? 0 : it->second;
}

uint64_t RouterMetrics::decisions(const std::string& profile) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = decisions_.find(profile);
  return it == decisions_.end() ? 0 : it->second;
}

std::string RouterMetrics::render(const std::vector<EndpointState>& endpoints) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  absl::StrAppend(&out,
                  "# HELP moeserve_router_scheduling_decisions_total Scheduling profile runs "
                  "that chose an endpoint.\n"
                  "# TYPE moeserve_router_scheduling_decisions_total counter\n");
  for (const auto& [p, n] : decisions_) {
    absl::StrAppend(&out, "moeserve_router_scheduling_decisions_total{profile=\"", escape_label(p),
                    "\"} ", n, "\n");
  }
  absl::StrAppend(&out,
                  "# HELP llm_d_inference_scheduler_disagg_decision_total P/D decisions.\n"
                  "# TYPE llm_d_inference_scheduler_disagg_decision_total counter\n");
  for (const auto& [d, n] : disagg_decisions_) {
    absl::StrAppend(&out, "llm_d_inference_scheduler_disagg_decision_total{decision_type=\"", d,
                    "\"} ", n, "\n");
  }
  absl::StrAppend(&out,
                  "# HELP moeserve_router_scorer_duration_seconds Time spent in each scorer.\n"
                  "# TYPE moeserve_router_scorer_duration_seconds histogram\n");
  for (const auto& [s, h] : scorer_seconds_) {
    const std::string label = escape_label(s);
    for (std::size_t i = 0; i < kScorerBuckets.size(); ++i) {
      absl::StrAppend(&out, "moeserve_router_scorer_duration_seconds_bucket{scorer=\"", label,
                      "\",le=\"", kScorerBuckets[i], "\"} ", h.buckets[i], "\n");
    }
    absl::StrAppend(&out, "moeserve_router_scorer_duration_seconds_bucket{scorer=\"", label,
                    "\",le=\"+Inf\"} ", h.count, "\n");
    absl::StrAppend(&out, "moeserve_router_scorer_duration_seconds_sum{scorer=\"", label, "\"} ",
                    h.sum, "\n");
    absl::StrAppend(&out, "moeserve_router_scorer_duration_seconds_count{scorer=\"", label, "\"} ",
                    h.count, "\n");
  }
  absl::StrAppend(&out,
                  "# HELP moeserve_router_endpoint_healthy 1 if the endpoint answers its "
                  "metrics scrapes.\n# TYPE moeserve_router_endpoint_healthy gauge\n");
  for (const auto& ep : endpoints) {
    absl::StrAppend(&out, "moeserve_router_endpoint_healthy{endpoint=\"", escape_label(ep.address),
                    "\"} ", ep.healthy ? 1 : 0, "\n");
  }
  absl::StrAppend(&out,
                  "# HELP moeserve_router_retries_total Requests re-sent to another endpoint "
                  "after a connection failure.\n# TYPE moeserve_router_retries_total counter\n",
                  "moeserve_router_retries_total ", retries_, "\n");
  absl::StrAppend(&out,
                  "# HELP moeserve_router_requests_total Requests forwarded, by endpoint.\n"
                  "# TYPE moeserve_router_requests_total counter\n");
  for (const auto& [e, n] : requests_) {
    absl::StrAppend(&out, "moeserve_router_requests_total{endpoint=\"", escape_label(e), "\"} ", n,
                    "\n");
  }
  absl::StrAppend(&out,
                  "# HELP moeserve_router_request_errors_total Requests the router answered "
                  "with an error.\n# TYPE moeserve_router_request_errors_total counter\n");
  for (const auto& [code, n] : errors_) {
    absl::StrAppend(&out, "moeserve_router_request_errors_total{code=\"", code, "\"} ", n, "\n");
  }
  for (const Collector& c : collectors_) out += c(endpoints);
  return out;
}

void RouterMetrics::add_collector(Collector collector) {
  std::lock_guard<std::mutex> lock(mu_);
  collectors_.push_back(std::move(collector));
}

}  // namespace moeserve::router
