// The scheduler's plugin seams, after llm-d's EPP framework
// (interface/scheduling/plugins.go): Filter, Scorer, Picker, ProfileHandler and the P/D
// decider. Implementations are `final` classes created by type name (plugin_registry.h).
//
// Thread-safety: one plugin instance serves every request, so all methods below may be called
// concurrently from several proxy threads; stateful implementations lock internally.
#pragma once

#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "router/scheduling_types.h"

namespace moeserve::router {

class Plugin;
using PluginsByName = std::map<std::string, Plugin*>;

class Plugin {
 public:
  explicit Plugin(std::string name) : name_(std::move(name)) {}
  virtual ~Plugin() = default;
  Plugin(const Plugin&) = delete;
  Plugin& operator=(const Plugin&) = delete;

  virtual std::string_view type() const = 0;
  const std::string& name() const { return name_; }

  // Resolves references to other plugins by name, after every plugin has been created.
  virtual Status bind(const PluginsByName& /*plugins*/) { return absl::OkStatus(); }
  // Called once the request's endpoints are chosen, before it is forwarded (llm-d PreRequest).
  virtual void pre_request(const SchedulingRequest& /*req*/, const SchedulingResult& /*result*/,
                           const CycleState& /*cycle*/) {}
  // The endpoint left the pool; drop any state kept for it.
  virtual void endpoint_removed(const std::string& /*address*/) {}

 private:
  std::string name_;
};

class Filter : public Plugin {
 public:
  using Plugin::Plugin;
  // Returns the subset of `endpoints` that may serve the request (order preserved).
  virtual std::vector<const EndpointState*> filter(
      CycleState& cycle, const SchedulingRequest& req,
      const std::vector<const EndpointState*>& endpoints) = 0;
};

class Scorer : public Plugin {
 public:
  using Plugin::Plugin;
  // One score per endpoint, same order as `endpoints`, each in [0, 1].
  virtual std::vector<double> score(CycleState& cycle, const SchedulingRequest& req,
                                    std::span<const EndpointState* const> endpoints) = 0;
};

class Picker : public Plugin {
 public:
  using Plugin::Plugin;
  // Chooses up to maxNumOfEndpoints endpoints, best first. `scored` is never empty.
  virtual ProfileRunResult pick(CycleState& cycle, std::vector<ScoredEndpoint> scored) = 0;
};

class SchedulingProfile;
using ProfilesByName = std::map<std::string, const SchedulingProfile*>;
using ProfileResults = std::map<std::string, std::optional<ProfileRunResult>>;

class ProfileHandler : public Plugin {
 public:
  using Plugin::Plugin;
  // Names of the profiles to run next given those already run; empty means done.
  virtual std::vector<std::string> pick(CycleState& cycle, const SchedulingRequest& req,
                                        const ProfilesByName& profiles,
                                        const ProfileResults& results,
                                        const std::vector<const EndpointState*>& endpoints) = 0;
  // Builds the final result; an error when no usable endpoint was found.
  virtual StatusOr<SchedulingResult> process_results(const ProfileResults& results) = 0;
  // Checks that the profiles this handler needs exist.
  virtual Status validate_profiles(const ProfilesByName& profiles) const = 0;
};

// Decides whether a request runs a separate prefill (P/D disaggregation).
class PdDecider : public Plugin {
 public:
  using Plugin::Plugin;
  virtual bool disaggregate(const CycleState& cycle, const SchedulingRequest& req,
                            const EndpointState& decode_endpoint) = 0;
};

}  // namespace moeserve::router
