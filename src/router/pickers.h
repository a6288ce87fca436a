// Pickers of llm-d; all take maxNumOfEndpoints (default 1). Thread-safe: the random engine is
// guarded by an absl::Mutex.
//  max-score-picker        shuffle, then stable sort by score descending (random tie-break).
//  random-picker           uniform choice.
//  weighted-random-picker  A-Res weighted sampling without replacement, key U^(1/score);
//                          uniform when every score is 0.
//  round-robin-picker      moeserve extension (llm-d has none): ignores scores and takes the
//                          candidates in turn, ordered by address; a baseline that stands for a
//                          Kubernetes Service in benchmarks.
#pragma once

#include <atomic>
#include <memory>
#include <random>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "router/plugin.h"
#include "router/plugin_params.h"

namespace moeserve::router {

class RandomizedPicker : public Picker {
 public:
  RandomizedPicker(std::string name, int max_endpoints, uint64_t seed)
      : Picker(std::move(name)), max_endpoints_(max_endpoints), rng_(seed) {}

 protected:
  int max_endpoints_;
  absl::Mutex mu_;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
};

class MaxScorePicker final : public RandomizedPicker {
 public:
  static constexpr char kType[] = "max-score-picker";
  static StatusOr<std::unique_ptr<Plugin>> create(const PluginParams& params, std::string name,
                                                  uint64_t seed);
  std::string_view type() const override { return kType; }
  ProfileRunResult pick(CycleState& cycle, std::vector<ScoredEndpoint> scored) override;

 private:
  using RandomizedPicker::RandomizedPicker;
};

class RandomPicker final : public RandomizedPicker {
 public:
  static constexpr char kType[] = "random-picker";
  static StatusOr<std::unique_ptr<Plugin>> create(const PluginParams& params, std::string name,
                                                  uint64_t seed);
  std::string_view type() const override { return kType; }
  ProfileRunResult pick(CycleState& cycle, std::vector<ScoredEndpoint> scored) override;

 private:
  using RandomizedPicker::RandomizedPicker;
};

class WeightedRandomPicker final : public RandomizedPicker {
 public:
  static constexpr char kType[] = "weighted-random-picker";
  static StatusOr<std::unique_ptr<Plugin>> create(const PluginParams& params, std::string name,
                                                  uint64_t seed);
  std::string_view type() const override { return kType; }
  ProfileRunResult pick(CycleState& cycle, std::vector<ScoredEndpoint> scored) override;

 private:
  using RandomizedPicker::RandomizedPicker;
};

class RoundRobinPicker final : public Picker {
 public:
  static constexpr char kType[] = "round-robin-picker";
  static StatusOr<std::unique_ptr<Plugin>> create(const PluginParams& params, std::string name);
  std::string_view type() const override { return kType; }
  ProfileRunResult pick(CycleState& cycle, std::vector<ScoredEndpoint> scored) override;

 private:
  RoundRobinPicker(std::string name, int max_endpoints)
      : Picker(std::move(name)), max_endpoints_(max_endpoints) {}

  int max_endpoints_;
  std::atomic<uint64_t> next_{0};
};

}  // namespace moeserve::router
