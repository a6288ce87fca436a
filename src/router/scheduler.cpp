#include "router/scheduler.h"

#include <algorithm>
#include <chrono>

#include "core/logging.h"

namespace moeserve::router {
namespace {

constexpr int kMaxProfileRounds = 8;  // bounds a misbehaving profile handler

}  // namespace

std::optional<ProfileRunResult> SchedulingProfile::run(
    CycleState& cycle, const SchedulingRequest& req,
    const std::vector<const EndpointState*>& endpoints, RouterMetrics* metrics) const {
  std::vector<const EndpointState*> candidates = endpoints;
  for (Filter* f : filters_) {
    if (candidates.empty()) break;
    candidates = f->filter(cycle, req, candidates);
  }
  if (candidates.empty()) return std::nullopt;

  const bool debug = spdlog::should_log(spdlog::level::debug);
  std::vector<double> totals(candidates.size(), 0.0);
  std::vector<std::vector<double>> per_scorer;
  for (const auto& ws : scorers_) {
    auto t0 = std::chrono::steady_clock::now();
    std::vector<double> s = ws.scorer->score(cycle, req, candidates);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (metrics) metrics->observe_scorer_seconds(ws.scorer->name(), secs);
    s.resize(candidates.size(), 0.0);
    for (std::size_t i = 0; i < candidates.size(); ++i) {
      totals[i] += std::clamp(s[i], 0.0, 1.0) * ws.weight;
    }
    if (debug) per_scorer.push_back(std::move(s));
  }
  std::vector<ScoredEndpoint> scored;
  scored.reserve(candidates.size());
  for (std::size_t i = 0; i < candidates.size(); ++i) scored.push_back({candidates[i], totals[i]});
  ProfileRunResult result = picker_->pick(cycle, std::move(scored));
  if (metrics && !result.targets.empty()) metrics->record_decision(name_);

  if (debug) {
    std::string line;
    for (std::size_t i = 0; i < candidates.size(); ++i) {
      absl::StrAppend(&line, " ", candidates[i]->address, "{");
      for (std::size_t s = 0; s < scorers_.size(); ++s) {
        absl::StrAppend(&line, s ? " " : "", scorers_[s].scorer->name(), "=",
                        absl::StrFormat("%.4f", per_scorer[s][i]));
      }
      absl::StrAppend(&line, " total=", absl::StrFormat("%.4f", totals[i]), "}");
    }
    spdlog::debug("decision request={} profile={} picked={} scores:{}", req.request_id, name_,
                  result.targets.empty() ? std::string("none") : result.targets.front(), line);
  }
  return result;
}

StatusOr<std::unique_ptr<Scheduler>> Scheduler::create(const EndpointPickerConfig& config,
                                                       PluginContext ctx,
                                                       const PluginRegistry& registry) {
  std::unique_ptr<Scheduler> s(new Scheduler());
  for (const auto& spec : config.plugins) {
    MS_ASSIGN_OR_RETURN(std::unique_ptr<Plugin> p, registry.create(spec, ctx));
    s->by_name_[spec.name] = p.get();
    s->plugins_.push_back(std::move(p));
  }
  for (const auto& p : s->plugins_) MS_RETURN_IF_ERROR(p->bind(s->by_name_));

  for (const auto& p : s->plugins_) {
    if (auto* h = dynamic_cast<ProfileHandler*>(p.get())) {
      if (s->handler_ != nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("EndpointPickerConfig: more than one profile handler ('",
                         s->handler_->name(), "' and '", h->name(), "')"));
      }
      s->handler_ = h;
    }
  }

  Picker* default_picker = nullptr;
  for (const auto& spec : config.profiles) {
    auto profile = std::make_unique<SchedulingProfile>(spec.name);
    for (const auto& ref : spec.plugins) {
      auto it = s->by_name_.find(ref.plugin_ref);
      if (it == s->by_name_.end()) {
        return absl::InvalidArgumentError(absl::StrCat("EndpointPickerConfig: profile '", spec.name,
                                                       "' references unknown plugin '",
                                                       ref.plugin_ref, "'"));
      }
      Plugin* p = it->second;
      bool used = false;
      if (auto* f = dynamic_cast<Filter*>(p)) {
        profile->filters_.push_back(f);
        used = true;
      }
      if (auto* sc = dynamic_cast<Scorer*>(p)) {
        profile->scorers_.push_back({sc, ref.weight.value_or(1.0)});
        used = true;
      }
      if (auto* pk = dynamic_cast<Picker*>(p)) {
        if (profile->picker_ != nullptr) {
          return absl::InvalidArgumentError(
              absl::StrCat("EndpointPickerConfig: profile '", spec.name, "' has two pickers ('",
                           profile->picker_->name(), "' and '", pk->name(), "')"));
        }
        profile->picker_ = pk;
        used = true;
      }
      if (!used) {
        MS_LOG_WARN(
            "profile '{}': plugin '{}' (type {}) is not a filter, scorer or picker; "
            "ignored in the profile",
            spec.name, p->name(), p->type());
      }
    }
    if (profile->picker_ == nullptr) {
      if (default_picker == nullptr) {
        PluginSpec def{"max-score-picker", "max-score-picker", nullptr};
        if (s->by_name_.count(def.name)) def.name = "default-max-score-picker";
        MS_ASSIGN_OR_RETURN(std::unique_ptr<Plugin> p, registry.create(def, ctx));
        default_picker = dynamic_cast<Picker*>(p.get());
        s->by_name_[def.name] = p.get();
        s->plugins_.push_back(std::move(p));
      }
      profile->picker_ = default_picker;
    }
    s->profile_ptrs_[spec.name] = profile.get();
    s->profiles_.push_back(std::move(profile));
  }
  if (s->profiles_.empty()) {
    return absl::InvalidArgumentError("EndpointPickerConfig: no scheduling profile");
  }
  if (s->handler_ == nullptr) {
    if (s->profiles_.size() != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "EndpointPickerConfig: ", s->profiles_.size(),
          " scheduling profiles need a profile handler plugin (e.g. disagg-profile-handler)"));
    }
    PluginSpec def{"single-profile-handler", "single-profile-handler", nullptr};
    MS_ASSIGN_OR_RETURN(std::unique_ptr<Plugin> p, registry.create(def, ctx));
    s->handler_ = dynamic_cast<ProfileHandler*>(p.get());
    s->by_name_[def.name] = p.get();
    s->plugins_.push_back(std::move(p));
  }
  MS_RETURN_IF_ERROR(s->handler_->validate_profiles(s->profile_ptrs_));
  return s;
}

StatusOr<SchedulingResult> Scheduler::schedule(const SchedulingRequest& req,
                                               const std::vector<EndpointState>& endpoints,
                                               CycleState& cycle) const {
  std::vector<const EndpointState*> candidates;
  candidates.reserve(endpoints.size());
  for (const auto& ep : endpoints) candidates.push_back(&ep);
  if (candidates.empty()) return absl::UnavailableError("no healthy endpoint");

  ProfileResults results;
  for (int round = 0; round < kMaxProfileRounds; ++round) {
    std::vector<std::string> next = handler_->pick(cycle, req, profile_ptrs_, results, candidates);
    if (next.empty()) break;
    for (const auto& name : next) {
      auto it = profile_ptrs_.find(name);
      if (it == profile_ptrs_.end() || results.count(name)) {
        results[name] = std::nullopt;
        continue;
      }
      results[name] = it->second->run(cycle, req, candidates, metrics_);
    }
  }
  auto result = handler_->process_results(results);
  if (result.ok() && metrics_ && handler_->type() == "disagg-profile-handler") {
    metrics_->record_disagg_decision(result->profile_results.size() > 1);
  }
  return result;
}

void Scheduler::pre_request(const SchedulingRequest& req, const SchedulingResult& result,
                            const CycleState& cycle) const {
  for (const auto& p : plugins_) p->pre_request(req, result, cycle);
}

void Scheduler::endpoint_removed(const std::string& address) const {
  for (const auto& p : plugins_) p->endpoint_removed(address);
}

Plugin* Scheduler::plugin(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

bool Scheduler::has_plugin_type(std::string_view type) const {
  return std::any_of(plugins_.begin(), plugins_.end(),
                     [&](const auto& p) { return p->type() == type; });
}

std::vector<Plugin*> Scheduler::plugins_of_type(std::string_view type) const {
  std::vector<Plugin*> out;
  for (const auto& p : plugins_) {
    if (p->type() == type) out.push_back(p.get());
  }
  return out;
}

}  // namespace moeserve::router
