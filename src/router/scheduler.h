// The scheduler: builds the plugins and profiles of an EndpointPickerConfig (applying llm-d's
// defaults: single-profile-handler when there is one profile and no handler, max-score-picker
// in a profile without picker, weight 1 for a scorer without weight) and runs one scheduling
// cycle per request: profile handler -> per profile: filters -> weighted scorers -> picker.
//
// Thread-safety: after create(), schedule()/pre_request()/endpoint_removed() may be called
// concurrently from any thread (plugins lock their own state).
#pragma once

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "router/config.h"
#include "router/plugin.h"
#include "router/plugin_registry.h"
#include "router/router_metrics.h"

namespace moeserve::router {

struct WeightedScorer {
  Scorer* scorer;
  double weight;
};

class SchedulingProfile final {
 public:
  explicit SchedulingProfile(std::string name) : name_(std::move(name)) {}
  const std::string& name() const { return name_; }
  const std::vector<Filter*>& filters() const { return filters_; }
  const std::vector<WeightedScorer>& scorers() const { return scorers_; }
  Picker* picker() const { return picker_; }

  // Filters, scores (sum of clamp(score, 0, 1) * weight) and picks; nullopt when the filters
  // leave no endpoint.
  std::optional<ProfileRunResult> run(CycleState& cycle, const SchedulingRequest& req,
                                      const std::vector<const EndpointState*>& endpoints,
                                      RouterMetrics* metrics) const;

 private:
  friend class Scheduler;
  std::string name_;
  std::vector<Filter*> filters_;
  std::vector<WeightedScorer> scorers_;
  Picker* picker_ = nullptr;
};

class Scheduler final {
 public:
  // Errors: unknown plugin type, bad parameter, unknown pluginRef, missing/ambiguous profile
  // handler, two pickers in a profile; each names the plugin or profile.
  static StatusOr<std::unique_ptr<Scheduler>> create(
      const EndpointPickerConfig& config, PluginContext ctx = {},
      const PluginRegistry& registry = PluginRegistry::builtin());

  // Runs one cycle over `endpoints` (already the healthy ones).
  StatusOr<SchedulingResult> schedule(const SchedulingRequest& req,
                                      const std::vector<EndpointState>& endpoints,
                                      CycleState& cycle) const;
  void pre_request(const SchedulingRequest& req, const SchedulingResult& result,
                   const CycleState& cycle) const;
  void endpoint_removed(const std::string& address) const;

  void set_metrics(RouterMetrics* metrics) { metrics_ = metrics; }
  const ProfileHandler& profile_handler() const { return *handler_; }
  Plugin* plugin(const std::string& name) const;
  bool has_plugin_type(std::string_view type) const;
  std::vector<Plugin*> plugins_of_type(std::string_view type) const;
  const ProfilesByName& profiles() const { return profile_ptrs_; }

 private:
  Scheduler() = default;

  std::vector<std::unique_ptr<Plugin>> plugins_;
  PluginsByName by_name_;
  std::vector<std::unique_ptr<SchedulingProfile>> profiles_;
  ProfilesByName profile_ptrs_;
  ProfileHandler* handler_ = nullptr;
  RouterMetrics* metrics_ = nullptr;
};

}  // namespace moeserve::router
