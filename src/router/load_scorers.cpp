#include "router/load_scorers.h"

#include <algorithm>

namespace moeserve::router {
namespace {

template <typename Get>
std::vector<double> min_max_inverse(std::span<const EndpointState* const> endpoints, Get get) {
  std::vector<double> scores(endpoints.size(), 1.0);
  if (endpoints.empty()) return scores;
  double lo = get(*endpoints[0]), hi = lo;
  for (const auto* ep : endpoints) {
    lo = std::min(lo, get(*ep));
    hi = std::max(hi, get(*ep));
  }
  if (hi == lo) return scores;
  for (std::size_t i = 0; i < endpoints.size(); ++i) {
    scores[i] = (hi - get(*endpoints[i])) / (hi - lo);
  }
  return scores;
}

}  // namespace

StatusOr<std::unique_ptr<Plugin>> QueueScorer::create(const PluginParams& params,
                                                      std::string name) {
  MS_RETURN_IF_ERROR(params.check_known({}));
  return std::unique_ptr<Plugin>(new QueueScorer(std::move(name)));
}

std::vector<double> QueueScorer::score(CycleState&, const SchedulingRequest&,
                                       std::span<const EndpointState* const> endpoints) {
  return min_max_inverse(endpoints, [](const EndpointState& e) { return e.metrics.waiting; });
}

StatusOr<std::unique_ptr<Plugin>> RunningRequestsScorer::create(const PluginParams& params,
                                                                std::string name) {
  MS_RETURN_IF_ERROR(params.check_known({}));
  return std::unique_ptr<Plugin>(new RunningRequestsScorer(std::move(name)));
}

std::vector<double> RunningRequestsScorer::score(CycleState&, const SchedulingRequest&,
                                                 std::span<const EndpointState* const> endpoints) {
  return min_max_inverse(endpoints, [](const EndpointState& e) { return e.metrics.running; });
}

StatusOr<std::unique_ptr<Plugin>> KvCacheUtilizationScorer::create(const PluginParams& params,
                                                                   std::string name) {
  MS_RETURN_IF_ERROR(params.check_known({}));
  return std::unique_ptr<Plugin>(new KvCacheUtilizationScorer(std::move(name)));
}

std::vector<double> KvCacheUtilizationScorer::score(
    CycleState&, const SchedulingRequest&, std::span<const EndpointState* const> endpoints) {
  std::vector<double> scores;
  scores.reserve(endpoints.size());
  for (const auto* ep : endpoints) {
    scores.push_back(std::clamp(1.0 - ep->metrics.kv_usage, 0.0, 1.0));
  }
  return scores;
}

StatusOr<std::unique_ptr<Plugin>> LoadAwareScorer::create(const PluginParams& params,
                                                          std::string name) {
  MS_RETURN_IF_ERROR(params.check_known({"threshold"}));
  std::unique_ptr<LoadAwareScorer> s(new LoadAwareScorer(std::move(name)));
  MS_ASSIGN_OR_RETURN(int64_t threshold, params.get_int("threshold", 128, 1, 1 << 30));
  s->threshold_ = static_cast<double>(threshold);
  return std::unique_ptr<Plugin>(std::move(s));
}

std::vector<double> LoadAwareScorer::score(CycleState&, const SchedulingRequest&,
                                           std::span<const EndpointState* const> endpoints) {
  std::vector<double> scores;
  scores.reserve(endpoints.size());
  for (const auto* ep : endpoints) {
    double q = ep->metrics.waiting;
    scores.push_back(q <= 0 ? 0.5 : 0.5 * (1.0 - std::min(q, threshold_) / threshold_));
  }
  return scores;
}

StatusOr<std::unique_ptr<Plugin>> ActiveRequestScorer::create(const PluginParams& params,
                                                              std::string name) {
  MS_RETURN_IF_ERROR(params.check_known({"idleThreshold", "maxBusyScore", "requestTimeout"}));
  std::unique_ptr<ActiveRequestScorer> s(new ActiveRequestScorer(std::move(name)));
  MS_ASSIGN_OR_RETURN(s->idle_threshold_, params.get_int("idleThreshold", 0, 0, 1 << 30));
  MS_ASSIGN_OR_RETURN(s->max_busy_score_, params.get_double("maxBusyScore", 1.0, 0.0, 1.0));
  return std::unique_ptr<Plugin>(std::move(s));
}

std::vector<double> ActiveRequestScorer::score(CycleState&, const SchedulingRequest&,
                                               std::span<const EndpointState* const> endpoints) {
  int64_t max_active = 0;
  for (const auto* ep : endpoints) max_active = std::max(max_active, ep->active_requests);
  std::vector<double> scores;
  scores.reserve(endpoints.size());
  for (const auto* ep : endpoints) {
    const int64_t a = ep->active_requests;
    if (a <= idle_threshold_) {
      scores.push_back(1.0);
    } else {
      scores.push_back(max_busy_score_ * static_cast<double>(max_active - a) /
                       static_cast<double>(max_active - idle_threshold_));
    }
  }
  return scores;
}

}  // namespace moeserve::router
