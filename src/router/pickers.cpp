#include "router/pickers.h"

#include <algorithm>
#include <cmath>

namespace moeserve::router {
namespace {

StatusOr<int> max_endpoints_param(const PluginParams& params) {
  MS_RETURN_IF_ERROR(params.check_known({"maxNumOfEndpoints"}));
  MS_ASSIGN_OR_RETURN(int64_t n, params.get_int("maxNumOfEndpoints", 1, 1, 1 << 20));
  return static_cast<int>(n);
}

ProfileRunResult take(const std::vector<ScoredEndpoint>& ordered, int max_endpoints) {
  ProfileRunResult out;
  for (const auto& s : ordered) {
    if (static_cast<int>(out.targets.size()) >= max_endpoints) break;
    out.targets.push_back(s.endpoint->address);
  }
  return out;
}

}  // namespace

StatusOr<std::unique_ptr<Plugin>> MaxScorePicker::create(const PluginParams& params,
                                                         std::string name, uint64_t seed) {
  MS_ASSIGN_OR_RETURN(int n, max_endpoints_param(params));
  return std::unique_ptr<Plugin>(new MaxScorePicker(std::move(name), n, seed));
}

ProfileRunResult MaxScorePicker::pick(CycleState&, std::vector<ScoredEndpoint> scored) {
  {
    absl::MutexLock lock(&mu_);
    std::shuffle(scored.begin(), scored.end(), rng_);
  }
  std::stable_sort(
      scored.begin(), scored.end(),
      [](const ScoredEndpoint& a, const ScoredEndpoint& b) { return a.score > b.score; });
  return take(scored, max_endpoints_);
}

StatusOr<std::unique_ptr<Plugin>> RandomPicker::create(const PluginParams& params, std::string name,
                                                       uint64_t seed) {
  MS_ASSIGN_OR_RETURN(int n, max_endpoints_param(params));
  return std::unique_ptr<Plugin>(new RandomPicker(std::move(name), n, seed));
}

ProfileRunResult RandomPicker::pick(CycleState&, std::vector<ScoredEndpoint> scored) {
  absl::MutexLock lock(&mu_);
  std::shuffle(scored.begin(), scored.end(), rng_);
  return take(scored, max_endpoints_);
}

StatusOr<std::unique_ptr<Plugin>> WeightedRandomPicker::create(const PluginParams& params,
                                                               std::string name, uint64_t seed) {
  MS_ASSIGN_OR_RETURN(int n, max_endpoints_param(params));
  return std::unique_ptr<Plugin>(new WeightedRandomPicker(std::move(name), n, seed));
}

ProfileRunResult WeightedRandomPicker::pick(CycleState&, std::vector<ScoredEndpoint> scored) {
  bool all_zero = std::all_of(scored.begin(), scored.end(),
                              [](const ScoredEndpoint& s) { return s.score <= 0; });
  std::vector<std::pair<double, std::size_t>> keys;  // (key, index)
  {
    absl::MutexLock lock(&mu_);
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    for (std::size_t i = 0; i < scored.size(); ++i) {
      double u = uniform(rng_);
      double key = all_zero ? u : (scored[i].score > 0 ? std::pow(u, 1.0 / scored[i].score) : -1.0);
      keys.emplace_back(key, i);
    }
  }
  std::sort(keys.begin(), keys.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<ScoredEndpoint> ordered;
  for (const auto& [key, i] : keys) ordered.push_back(scored[i]);
  return take(ordered, max_endpoints_);
}

StatusOr<std::unique_ptr<Plugin>> RoundRobinPicker::create(const PluginParams& params,
                                                           std::string name) {
  MS_ASSIGN_OR_RETURN(int n, max_endpoints_param(params));
  return std::unique_ptr<Plugin>(new RoundRobinPicker(std::move(name), n));
}

ProfileRunResult RoundRobinPicker::pick(CycleState&, std::vector<ScoredEndpoint> scored) {
  ProfileRunResult out;
  if (scored.empty()) return out;
  std::sort(scored.begin(), scored.end(), [](const ScoredEndpoint& a, const ScoredEndpoint& b) {
    return a.endpoint->address < b.endpoint->address;
  });
  const std::size_t first = next_.fetch_add(1, std::memory_order_relaxed) % scored.size();
  for (std::size_t i = 0; i < scored.size() && static_cast<int>(i) < max_endpoints_; ++i) {
    out.targets.push_back(scored[(first + i) % scored.size()].endpoint->address);
  }
  return out;
}

}  // namespace moeserve::router
