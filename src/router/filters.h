// Filters of llm-d (filter/bylabel). Stateless, thread-safe.
//  decode-filter   keeps llm-d.ai/role in {decode, prefill-decode, both, encode-prefill-decode}
//                  and endpoints without the label.
//  prefill-filter  keeps llm-d.ai/role in {prefill, encode-prefill, prefill-decode, both,
//                  encode-prefill-decode}.
//  label-selector-filter  Kubernetes label selector: parameters matchLabels {k: v} and
//                  matchExpressions [{key, operator: In|NotIn|Exists|DoesNotExist, values}].
#pragma once

#include <memory>
#include <set>
#include <string>

#include "router/plugin.h"
#include "router/plugin_params.h"

namespace moeserve::router {

class RoleFilter final : public Filter {
 public:
  static constexpr char kDecodeType[] = "decode-filter";
  static constexpr char kPrefillType[] = "prefill-filter";
  static StatusOr<std::unique_ptr<Plugin>> create_decode(const PluginParams& params,
                                                         std::string name);
  static StatusOr<std::unique_ptr<Plugin>> create_prefill(const PluginParams& params,
                                                          std::string name);

  std::string_view type() const override { return decode_ ? kDecodeType : kPrefillType; }
  std::vector<const EndpointState*> filter(
      CycleState& cycle, const SchedulingRequest& req,
      const std::vector<const EndpointState*>& endpoints) override;

 private:
  RoleFilter(std::string name, bool decode);
  bool decode_;
  std::set<std::string> roles_;
};

class LabelSelectorFilter final : public Filter {
 public:
  static constexpr char kType[] = "label-selector-filter";
  static StatusOr<std::unique_ptr<Plugin>> create(const PluginParams& params, std::string name);

  std::string_view type() const override { return kType; }
  std::vector<const EndpointState*> filter(
      CycleState& cycle, const SchedulingRequest& req,
      const std::vector<const EndpointState*>& endpoints) override;

 private:
  enum class Op { kIn, kNotIn, kExists, kDoesNotExist };
  struct Expression {
    std::string key;
    Op op;
    std::set<std::string> values;
  };
  using Filter::Filter;
  bool matches(const EndpointState& ep) const;

  std::map<std::string, std::string> match_labels_;
  std::vector<Expression> expressions_;
};

}  // namespace moeserve::router
