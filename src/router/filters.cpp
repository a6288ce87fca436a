#include "router/filters.h"

namespace moeserve::router {

RoleFilter::RoleFilter(std::string name, bool decode) : Filter(std::move(name)), decode_(decode) {
  if (decode) {
    roles_ = {"decode", "prefill-decode", "both", "encode-prefill-decode"};
  } else {
    roles_ = {"prefill", "encode-prefill", "prefill-decode", "both", "encode-prefill-decode"};
  }
}

StatusOr<std::unique_ptr<Plugin>> RoleFilter::create_decode(const PluginParams& params,
                                                            std::string name) {
  MS_RETURN_IF_ERROR(params.check_known({}));
  return std::unique_ptr<Plugin>(new RoleFilter(std::move(name), true));
}

StatusOr<std::unique_ptr<Plugin>> RoleFilter::create_prefill(const PluginParams& params,
                                                             std::string name) {
  MS_RETURN_IF_ERROR(params.check_known({}));
  return std::unique_ptr<Plugin>(new RoleFilter(std::move(name), false));
}

std::vector<const EndpointState*> RoleFilter::filter(
    CycleState&, const SchedulingRequest&, const std::vector<const EndpointState*>& endpoints) {
  std::vector<const EndpointState*> out;
  for (const auto* ep : endpoints) {
    if (!ep->has_label(kRoleLabel)) {
      if (decode_) out.push_back(ep);
      continue;
    }
    if (roles_.count(ep->label(kRoleLabel))) out.push_back(ep);
  }
  return out;
}

StatusOr<std::unique_ptr<Plugin>> LabelSelectorFilter::create(const PluginParams& params,
                                                              std::string name) {
  MS_RETURN_IF_ERROR(params.check_known({"matchLabels", "matchExpressions"}));
  std::unique_ptr<LabelSelectorFilter> f(new LabelSelectorFilter(std::move(name)));
  MS_ASSIGN_OR_RETURN(f->match_labels_, params.get_string_map("matchLabels"));
  if (params.has("matchExpressions")) {
    const auto& exprs = params.raw()["matchExpressions"];
    if (!exprs.is_array()) return params.error("matchExpressions", "must be a list");
    for (const auto& e : exprs) {
      if (!e.is_object() || !e.contains("key") || !e["key"].is_string() ||
          !e.contains("operator") || !e["operator"].is_string()) {
        return params.error(
            "matchExpressions",
            absl::StrCat("entries need string 'key' and 'operator', got ", e.dump()));
      }
      Expression ex;
      ex.key = e["key"].get<std::string>();
      const std::string op = e["operator"].get<std::string>();
      if (op == "In") {
        ex.op = Op::kIn;
      } else if (op == "NotIn") {
        ex.op = Op::kNotIn;
      } else if (op == "Exists") {
        ex.op = Op::kExists;
      } else if (op == "DoesNotExist") {
        ex.op = Op::kDoesNotExist;
      } else {
        return params.error("matchExpressions",
                            absl::StrCat("operator must be In, NotIn, Exists or DoesNotExist, "
                                         "got '",
                                         op, "'"));
      }
      if (e.contains("values")) {
        if (!e["values"].is_array())
          return params.error("matchExpressions", "values must be a list");
        for (const auto& v : e["values"]) {
          if (!v.is_string()) return params.error("matchExpressions", "values must be strings");
          ex.values.insert(v.get<std::string>());
        }
      }
      if ((ex.op == Op::kIn || ex.op == Op::kNotIn) && ex.values.empty()) {
        return params.error("matchExpressions",
                            absl::StrCat("operator ", op, " needs non-empty values"));
      }
      f->expressions_.push_back(std::move(ex));
    }
  }
  return std::unique_ptr<Plugin>(std::move(f));
}

bool LabelSelectorFilter::matches(const EndpointState& ep) const {
  for (const auto& [k, v] : match_labels_) {
    if (!ep.has_label(k) || ep.label(k) != v) return false;
  }
  for (const auto& ex : expressions_) {
    const bool has = ep.has_label(ex.key);
    switch (ex.op) {
      case Op::kIn:
        if (!has || !ex.values.count(ep.label(ex.key))) return false;
        break;
      case Op::kNotIn:
        if (has && ex.values.count(ep.label(ex.key))) return false;
        break;
      case Op::kExists:
        if (!has) return false;
        break;
      case Op::kDoesNotExist:
        if (has) return false;
        break;
    }
  }
  return true;
}

std::vector<const EndpointState*> LabelSelectorFilter::filter(
    CycleState&, const SchedulingRequest&, const std::vector<const EndpointState*>& endpoints) {
  std::vector<const EndpointState*> out;
  for (const auto* ep : endpoints) {
    if (matches(*ep)) out.push_back(ep);
  }
  return out;
}

}  // namespace moeserve::router
