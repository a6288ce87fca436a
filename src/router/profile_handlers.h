// Profile handlers and P/D deciders of llm-d.
//  single-profile-handler  runs the one profile once; its result is primary.
//  disagg-profile-handler  runs `decode` first, then asks the prefill decider whether to run
//                          `prefill`; decode is primary; if prefill finds no endpoint the result
//                          is decode-only. Parameters: deciders {prefill: <decider plugin name>}
//                          (absent: always disaggregate), decodeProfile ("decode"),
//                          prefillProfile ("prefill").
//  prefix-based-pd-decider disaggregates when the uncached prompt is long enough:
//                          inputTokens = characters/4, nonCached = inputTokens -
//                          matchBlocks*blockSizeTokens on the chosen decode endpoint (from
//                          prefix-cache-scorer's cycle state); P/D if nonCached >=
//                          nonCachedTokens; nonCachedTokens 0 disables P/D.
//  always-disagg-pd-decider always disaggregates.
// Stateless after bind(); thread-safe.
#pragma once

#include <memory>
#include <string>

#include "router/plugin.h"
#include "router/plugin_params.h"

namespace moeserve::router {

class SingleProfileHandler final : public ProfileHandler {
 public:
  static constexpr char kType[] = "single-profile-handler";
  static StatusOr<std::unique_ptr<Plugin>> create(const PluginParams& params, std::string name);
  std::string_view type() const override { return kType; }
  std::vector<std::string> pick(CycleState& cycle, const SchedulingRequest& req,
                                const ProfilesByName& profiles, const ProfileResults& results,
                                const std::vector<const EndpointState*>& endpoints) override;
  StatusOr<SchedulingResult> process_results(const ProfileResults& results) override;
  Status validate_profiles(const ProfilesByName& profiles) const override;

 private:
  using ProfileHandler::ProfileHandler;
};

class DisaggProfileHandler final : public ProfileHandler {
 public:
  static constexpr char kType[] = "disagg-profile-handler";
  static StatusOr<std::unique_ptr<Plugin>> create(const PluginParams& params, std::string name);
  std::string_view type() const override { return kType; }
  Status bind(const PluginsByName& plugins) override;
  std::vector<std::string> pick(CycleState& cycle, const SchedulingRequest& req,
                                const ProfilesByName& profiles, const ProfileResults& results,
                                const std::vector<const EndpointState*>& endpoints) override;
  StatusOr<SchedulingResult> process_results(const ProfileResults& results) override;
  Status validate_profiles(const ProfilesByName& profiles) const override;

  const std::string& decode_profile() const { return decode_profile_; }
  const std::string& prefill_profile() const { return prefill_profile_; }

 private:
  using ProfileHandler::ProfileHandler;
  std::string decode_profile_ = "decode";
  std::string prefill_profile_ = "prefill";
  std::string decider_name_;
  PdDecider* decider_ = nullptr;  // null: always disaggregate
};

class PrefixBasedPdDecider final : public PdDecider {
 public:
  static constexpr char kType[] = "prefix-based-pd-decider";
  static StatusOr<std::unique_ptr<Plugin>> create(const PluginParams& params, std::string name);
  std::string_view type() const override { return kType; }
  bool disaggregate(const CycleState& cycle, const SchedulingRequest& req,
                    const EndpointState& decode_endpoint) override;

 private:
  using PdDecider::PdDecider;
  int64_t non_cached_tokens_ = 0;
};

class AlwaysDisaggPdDecider final : public PdDecider {
 public:
  static constexpr char kType[] = "always-disagg-pd-decider";
  static StatusOr<std::unique_ptr<Plugin>> create(const PluginParams& params, std::string name);
  std::string_view type() const override { return kType; }
  bool disaggregate(const CycleState&, const SchedulingRequest&, const EndpointState&) override {
    return true;
  }

 private:
  using PdDecider::PdDecider;
};

}  // namespace moeserve::router
