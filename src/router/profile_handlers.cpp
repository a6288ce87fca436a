#include "router/profile_handlers.h"

namespace moeserve::router {

StatusOr<std::unique_ptr<Plugin>> SingleProfileHandler::create(const PluginParams& params,
                                                               std::string name) {
  MS_RETURN_IF_ERROR(params.check_known({}));
  return std::unique_ptr<Plugin>(new SingleProfileHandler(std::move(name)));
}

std::vector<std::string> SingleProfileHandler::pick(CycleState&, const SchedulingRequest&,
                                                    const ProfilesByName& profiles,
                                                    const ProfileResults& results,
                                                    const std::vector<const EndpointState*>&) {
  if (!results.empty() || profiles.empty()) return {};
  return {profiles.begin()->first};
}

StatusOr<SchedulingResult> SingleProfileHandler::process_results(const ProfileResults& results) {
  if (results.size() != 1 || !results.begin()->second || results.begin()->second->targets.empty()) {
    return absl::UnavailableError("no endpoint available for the request");
  }
  SchedulingResult out;
  out.primary_profile = results.begin()->first;
  out.profile_results = results;
  return out;
}

Status SingleProfileHandler::validate_profiles(const ProfilesByName& profiles) const {
  if (profiles.size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("plugin '", name(),
                     "' (type single-profile-handler) needs exactly one scheduling "
                     "profile, the config has ",
                     profiles.size()));
  }
  return absl::OkStatus();
}

StatusOr<std::unique_ptr<Plugin>> DisaggProfileHandler::create(const PluginParams& params,
                                                               std::string name) {
  MS_RETURN_IF_ERROR(
      params.check_known({"deciders", "decodeProfile", "prefillProfile", "profiles"}));
  std::unique_ptr<DisaggProfileHandler> h(new DisaggProfileHandler(std::move(name)));
  MS_ASSIGN_OR_RETURN(h->decode_profile_, params.get_string("decodeProfile", "decode"));
  MS_ASSIGN_OR_RETURN(h->prefill_profile_, params.get_string("prefillProfile", "prefill"));
  MS_ASSIGN_OR_RETURN(auto deciders, params.get_string_map("deciders"));
  for (const auto& [stage, decider] : deciders) {
    if (stage != "prefill") {
      return params.error("deciders",
                          absl::StrCat("has unsupported stage '", stage, "' (supported: prefill)"));
    }
    h->decider_name_ = decider;
  }
  return std::unique_ptr<Plugin>(std::move(h));
}

Status DisaggProfileHandler::bind(const PluginsByName& plugins) {
  if (decider_name_.empty()) return absl::OkStatus();
  auto it = plugins.find(decider_name_);
  if (it == plugins.end()) {
    return absl::InvalidArgumentError(absl::StrCat("plugin '", name(),
                                                   "' (type disagg-profile-handler): parameter "
                                                   "'deciders' names unknown plugin '",
                                                   decider_name_, "'"));
  }
  decider_ = dynamic_cast<PdDecider*>(it->second);
  if (decider_ == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "plugin '", name(), "' (type disagg-profile-handler): parameter 'deciders': plugin '",
        decider_name_, "' (type ", std::string(it->second->type()), ") is not a P/D decider"));
  }
  return absl::OkStatus();
}

std::vector<std::string> DisaggProfileHandler::pick(
    CycleState& cycle, const SchedulingRequest& req, const ProfilesByName&,
    const ProfileResults& results, const std::vector<const EndpointState*>& endpoints) {
  auto decode = results.find(decode_profile_);
  if (decode == results.end()) return {decode_profile_};
  if (results.count(prefill_profile_)) return {};
  if (!decode->second || decode->second->targets.empty()) return {};
  const std::string& chosen = decode->second->targets.front();
  const EndpointState* decode_ep = nullptr;
  for (const auto* ep : endpoints) {
    if (ep->address == chosen) decode_ep = ep;
  }
  if (decode_ep == nullptr) return {};
  if (decider_ != nullptr && !decider_->disaggregate(cycle, req, *decode_ep)) return {};
  return {prefill_profile_};
}

StatusOr<SchedulingResult> DisaggProfileHandler::process_results(const ProfileResults& results) {
  auto decode = results.find(decode_profile_);
  if (decode == results.end() || !decode->second || decode->second->targets.empty()) {
    return absl::UnavailableError("no decode endpoint available for the request");
  }
  SchedulingResult out;
  out.primary_profile = decode_profile_;
  out.profile_results[decode_profile_] = decode->second;
  auto prefill = results.find(prefill_profile_);
  if (prefill != results.end() && prefill->second && !prefill->second->targets.empty()) {
    out.profile_results[prefill_profile_] = prefill->second;
  }
  return out;
}

Status DisaggProfileHandler::validate_profiles(const ProfilesByName& profiles) const {
  for (const auto* p : {&decode_profile_, &prefill_profile_}) {
    if (!profiles.count(*p)) {
      return absl::InvalidArgumentError(
          absl::StrCat("plugin '", name(),
                       "' (type disagg-profile-handler) needs a scheduling "
                       "profile named '",
                       *p, "'"));
    }
  }
  return absl::OkStatus();
}

StatusOr<std::unique_ptr<Plugin>> PrefixBasedPdDecider::create(const PluginParams& params,
                                                               std::string name) {
  MS_RETURN_IF_ERROR(params.check_known({"nonCachedTokens"}));
  std::unique_ptr<PrefixBasedPdDecider> d(new PrefixBasedPdDecider(std::move(name)));
  MS_ASSIGN_OR_RETURN(d->non_cached_tokens_, params.get_int("nonCachedTokens", 0, 0, 1 << 30));
  return std::unique_ptr<Plugin>(std::move(d));
}

bool PrefixBasedPdDecider::disaggregate(const CycleState& cycle, const SchedulingRequest& req,
                                        const EndpointState& decode_endpoint) {
  if (non_cached_tokens_ <= 0) return false;
  const int64_t input_tokens = static_cast<int64_t>(req.prompt_text.size() / 4);
  int64_t cached = 0;
  auto it = cycle.prefix_matches.find(decode_endpoint.address);
  if (it != cycle.prefix_matches.end()) {
    cached = static_cast<int64_t>(it->second.matched_blocks) * it->second.block_size_tokens;
  }
  return input_tokens - cached >= non_cached_tokens_;
}

StatusOr<std::unique_ptr<Plugin>> AlwaysDisaggPdDecider::create(const PluginParams& params,
                                                                std::string name) {
  MS_RETURN_IF_ERROR(params.check_known({}));
  return std::unique_ptr<Plugin>(new AlwaysDisaggPdDecider(std::move(name)));
}

}  // namespace moeserve::router
