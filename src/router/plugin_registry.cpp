#include "router/plugin_registry.h"

#include <random>

#include "absl/strings/str_join.h"
#include "router/affinity_scorers.h"
#include "router/filters.h"
#include "router/load_scorers.h"
#include "router/pickers.h"
#include "router/precise_prefix_cache_scorer.h"
#include "router/prefix_cache_scorer.h"
#include "router/profile_handlers.h"

namespace moeserve::router {
namespace {

template <typename Fn>
PluginFactory simple(Fn fn) {
  return [fn](const PluginParams& p, std::string name, PluginContext&) {
    return fn(p, std::move(name));
  };
}

template <typename Fn>
PluginFactory seeded(Fn fn) {
  return [fn](const PluginParams& p, std::string name, PluginContext& ctx) {
    uint64_t seed = ctx.seed;
    if (seed == 0)
      seed = (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
    else
      ++ctx.seed;  // distinct but reproducible streams per picker
    return fn(p, std::move(name), seed);
  };
}

PluginRegistry make_builtin() {
  PluginRegistry r;
  r.add(SingleProfileHandler::kType, simple(&SingleProfileHandler::create));
  r.add(DisaggProfileHandler::kType, simple(&DisaggProfileHandler::create));
  r.add(PrefixBasedPdDecider::kType, simple(&PrefixBasedPdDecider::create));
  r.add(AlwaysDisaggPdDecider::kType, simple(&AlwaysDisaggPdDecider::create));
  r.add(RoleFilter::kDecodeType, simple(&RoleFilter::create_decode));
  r.add(RoleFilter::kPrefillType, simple(&RoleFilter::create_prefill));
  r.add(LabelSelectorFilter::kType, simple(&LabelSelectorFilter::create));
  r.add(PrefixCacheScorer::kType, simple(&PrefixCacheScorer::create));
  r.add(PrecisePrefixCacheScorer::kType,
        [](const PluginParams& p, std::string name, PluginContext& ctx) {
          return PrecisePrefixCacheScorer::create(p, std::move(name), ctx.kv_index);
        });
  r.add(QueueScorer::kType, simple(&QueueScorer::create));
  r.add(RunningRequestsScorer::kType, simple(&RunningRequestsScorer::create));
  r.add(KvCacheUtilizationScorer::kType, simple(&KvCacheUtilizationScorer::create));
  r.add(LoadAwareScorer::kType, simple(&LoadAwareScorer::create));
  r.add(ActiveRequestScorer::kType, simple(&ActiveRequestScorer::create));
  r.add(SessionAffinityScorer::kType, simple(&SessionAffinityScorer::create));
  r.add(NoHitLruScorer::kType, simple(&NoHitLruScorer::create));
  r.add(MaxScorePicker::kType, seeded(&MaxScorePicker::create));
  r.add(RandomPicker::kType, seeded(&RandomPicker::create));
  r.add(WeightedRandomPicker::kType, seeded(&WeightedRandomPicker::create));
  r.add(RoundRobinPicker::kType, simple(&RoundRobinPicker::create));
  return r;
}

}  // namespace

const PluginRegistry& PluginRegistry::builtin() {
  static const PluginRegistry registry = make_builtin();
  return registry;
}

std::vector<std::string> PluginRegistry::types() const {
  std::vector<std::string> out;
  for (const auto& [type, f] : factories_) out.push_back(type);
  return out;
}

StatusOr<std::unique_ptr<Plugin>> PluginRegistry::create(const PluginSpec& spec,
                                                         PluginContext& ctx) const {
  auto it = factories_.find(spec.type);
  if (it == factories_.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("plugin '", spec.name, "': unknown type '", spec.type,
                     "' (known: ", absl::StrJoin(types(), ", "), ")"));
  }
  PluginParams params(spec.name, spec.type, spec.parameters);
  return it->second(params, spec.name, ctx);
}

}  // namespace moeserve::router
