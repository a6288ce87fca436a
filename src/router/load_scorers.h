// Load-based scorers of llm-d (plugins/scheduling/scorer): all read the endpoint snapshot only,
// so they are stateless and thread-safe.
//  queue-scorer                 (maxQ - q) / (maxQ - minQ) over the candidates; 1 if all equal.
//  running-requests-size-scorer same min-max formula over running requests.
//  kv-cache-utilization-scorer  1 - kv_cache_usage.
//  load-aware-scorer            0.5 if waiting == 0, else 0.5 * (1 - min(q, threshold)/threshold).
//  active-request-scorer        router-tracked in-flight count a: a <= idleThreshold -> 1;
//                               otherwise maxBusyScore * (maxA - a) / (maxA - idleThreshold),
//                               maxA the largest count among the candidates.
#pragma once

#include <memory>

#include "router/plugin.h"
#include "router/plugin_params.h"

namespace moeserve::router {

class QueueScorer final : public Scorer {
 public:
  static constexpr char kType[] = "queue-scorer";
  static StatusOr<std::unique_ptr<Plugin>> create(const PluginParams& params, std::string name);
  std::string_view type() const override { return kType; }
  std::vector<double> score(CycleState& cycle, const SchedulingRequest& req,
                            std::span<const EndpointState* const> endpoints) override;

 private:
  using Scorer::Scorer;
};

class RunningRequestsScorer final : public Scorer {
 public:
  static constexpr char kType[] = "running-requests-size-scorer";
  static StatusOr<std::unique_ptr<Plugin>> create(const PluginParams& params, std::string name);
  std::string_view type() const override { return kType; }
  std::vector<double> score(CycleState& cycle, const SchedulingRequest& req,
                            std::span<const EndpointState* const> endpoints) override;

 private:
  using Scorer::Scorer;
};

class KvCacheUtilizationScorer final : public Scorer {
 public:
  static constexpr char kType[] = "kv-cache-utilization-scorer";
  static StatusOr<std::unique_ptr<Plugin>> create(const PluginParams& params, std::string name);
  std::string_view type() const override { return kType; }
  std::vector<double> score(CycleState& cycle, const SchedulingRequest& req,
                            std::span<const EndpointState* const> endpoints) override;

 private:
  using Scorer::Scorer;
};

class LoadAwareScorer final : public Scorer {
 public:
  static constexpr char kType[] = "load-aware-scorer";
  static StatusOr<std::unique_ptr<Plugin>> create(const PluginParams& params, std::string name);
  std::string_view type() const override { return kType; }
  std::vector<double> score(CycleState& cycle, const SchedulingRequest& req,
                            std::span<const EndpointState* const> endpoints) override;

 private:
  using Scorer::Scorer;
  double threshold_ = 128;
};

class ActiveRequestScorer final : public Scorer {
 public:
  static constexpr char kType[] = "active-request-scorer";
  static StatusOr<std::unique_ptr<Plugin>> create(const PluginParams& params, std::string name);
  std::string_view type() const override { return kType; }
  std::vector<double> score(CycleState& cycle, const SchedulingRequest& req,
                            std::span<const EndpointState* const> endpoints) override;

 private:
  using Scorer::Scorer;
  int64_t idle_threshold_ = 0;
  double max_busy_score_ = 1.0;
};

}  // namespace moeserve::router
