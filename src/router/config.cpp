#include "router/config.h"

#include <fstream>
#include <set>
#include <sstream>

#include "yaml-cpp/yaml.h"

namespace moeserve::router {
namespace {

// YAML scalars carry no type; convert like a YAML 1.2 core-schema loader would.
nlohmann::json scalar_to_json(const YAML::Node& node) {
  const std::string& s = node.Scalar();
  if (node.Tag() == "!") return s;  // quoted
  if (s == "null" || s == "~" || s.empty()) return nullptr;
  if (s == "true" || s == "True") return true;
  if (s == "false" || s == "False") return false;
  {
    std::size_t pos = 0;
    try {
      long long v = std::stoll(s, &pos);
      if (pos == s.size()) return v;
    } catch (...) {
    }
    try {
      double d = std::stod(s, &pos);
      if (pos == s.size()) return d;
    } catch (...) {
    }
  }
  return s;
}

nlohmann::json yaml_to_json(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Scalar:
      return scalar_to_json(node);
    case YAML::NodeType::Sequence: {
      nlohmann::json arr = nlohmann::json::array();
      for (const auto& item : node) arr.push_back(yaml_to_json(item));
      return arr;
    }
    case YAML::NodeType::Map: {
      nlohmann::json obj = nlohmann::json::object();
      for (const auto& kv : node) obj[kv.first.as<std::string>()] = yaml_to_json(kv.second);
      return obj;
    }
  }
  return nullptr;
}

Status config_error(const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("EndpointPickerConfig: ", what));
}

StatusOr<std::string> required_string(const nlohmann::json& obj, const std::string& key,
                                      const std::string& where) {
  if (!obj.contains(key) || !obj[key].is_string() || obj[key].get<std::string>().empty()) {
    return config_error(absl::StrCat(where, ": '", key, "' must be a non-empty string"));
  }
  return obj[key].get<std::string>();
}

}  // namespace

EndpointPickerConfig default_endpoint_picker_config() {
  EndpointPickerConfig cfg;
  for (const char* type : {"queue-scorer", "kv-cache-utilization-scorer", "prefix-cache-scorer"}) {
    cfg.plugins.push_back(PluginSpec{type, type, nullptr});
  }
  cfg.profiles.push_back(ProfileSpec{
      "default",
      {{"queue-scorer", 2.0}, {"kv-cache-utilization-scorer", 2.0}, {"prefix-cache-scorer", 3.0}}});
  return cfg;
}

StatusOr<EndpointPickerConfig> parse_endpoint_picker_config(std::string_view yaml_text) {
  nlohmann::json doc;
  try {
    YAML::Node root = YAML::Load(std::string(yaml_text));
    doc = yaml_to_json(root);
  } catch (const YAML::Exception& e) {
    return config_error(absl::StrCat("invalid YAML: ", e.what()));
  }
  if (doc.is_null()) return default_endpoint_picker_config();
  if (!doc.is_object()) return config_error("top level must be a mapping");

  EndpointPickerConfig cfg;
  if (doc.contains("apiVersion")) {
    MS_ASSIGN_OR_RETURN(cfg.api_version, required_string(doc, "apiVersion", "top level"));
    if (cfg.api_version != kApiVersionCurrent && cfg.api_version != kApiVersionLegacy) {
      return config_error(absl::StrCat("unsupported apiVersion '", cfg.api_version, "' (expected ",
                                       kApiVersionCurrent, " or ", kApiVersionLegacy, ")"));
    }
  }
  if (doc.contains("kind")) {
    MS_ASSIGN_OR_RETURN(cfg.kind, required_string(doc, "kind", "top level"));
    if (cfg.kind != "EndpointPickerConfig") {
      return config_error(absl::StrCat("kind must be EndpointPickerConfig, got '", cfg.kind, "'"));
    }
  }

  std::set<std::string> names;
  if (doc.contains("plugins") && !doc["plugins"].is_null()) {
    if (!doc["plugins"].is_array()) return config_error("'plugins' must be a list");
    for (std::size_t i = 0; i < doc["plugins"].size(); ++i) {
      const auto& p = doc["plugins"][i];
      std::string where = absl::StrCat("plugins[", i, "]");
      if (!p.is_object()) return config_error(absl::StrCat(where, " must be a mapping"));
      PluginSpec spec;
      MS_ASSIGN_OR_RETURN(spec.type, required_string(p, "type", where));
      spec.name = spec.type;
      if (p.contains("name") && !p["name"].is_null()) {
        MS_ASSIGN_OR_RETURN(spec.name, required_string(p, "name", where));
      }
      if (p.contains("parameters")) spec.parameters = p["parameters"];
      if (!names.insert(spec.name).second) {
        return config_error(absl::StrCat("duplicate plugin name '", spec.name, "'"));
      }
      cfg.plugins.push_back(std::move(spec));
    }
  }

  if (doc.contains("schedulingProfiles") && !doc["schedulingProfiles"].is_null()) {
    const auto& profiles = doc["schedulingProfiles"];
    if (!profiles.is_array()) return config_error("'schedulingProfiles' must be a list");
    std::set<std::string> profile_names;
    for (std::size_t i = 0; i < profiles.size(); ++i) {
      const auto& p = profiles[i];
      std::string where = absl::StrCat("schedulingProfiles[", i, "]");
      if (!p.is_object()) return config_error(absl::StrCat(where, " must be a mapping"));
      ProfileSpec spec;
      MS_ASSIGN_OR_RETURN(spec.name, required_string(p, "name", where));
      if (!profile_names.insert(spec.name).second) {
        return config_error(absl::StrCat("duplicate scheduling profile '", spec.name, "'"));
      }
      if (p.contains("plugins") && !p["plugins"].is_null()) {
        if (!p["plugins"].is_array()) {
          return config_error(absl::StrCat("profile '", spec.name, "': 'plugins' must be a list"));
        }
        for (const auto& ref : p["plugins"]) {
          if (!ref.is_object()) {
            return config_error(
                absl::StrCat("profile '", spec.name, "': each plugin entry must be a mapping"));
          }
          ProfilePluginRef r;
          MS_ASSIGN_OR_RETURN(
              r.plugin_ref,
              required_string(ref, "pluginRef", absl::StrCat("profile '", spec.name, "'")));
          if (ref.contains("weight") && !ref["weight"].is_null()) {
            if (!ref["weight"].is_number() || ref["weight"].get<double>() < 0) {
              return config_error(absl::StrCat("profile '", spec.name, "': plugin '", r.plugin_ref,
                                               "': weight must be a number >= 0, got ",
                                               ref["weight"].dump()));
            }
            r.weight = ref["weight"].get<double>();
          }
          spec.plugins.push_back(std::move(r));
        }
      }
      cfg.profiles.push_back(std::move(spec));
    }
  }

  if (cfg.plugins.empty() && cfg.profiles.empty()) {
    EndpointPickerConfig def = default_endpoint_picker_config();
    def.api_version = cfg.api_version;
    return def;
  }
  // llm-d: without profiles, one "default" profile references every plugin.
  if (cfg.profiles.empty()) {
    ProfileSpec def{"default", {}};
    for (const auto& p : cfg.plugins) def.plugins.push_back({p.name, std::nullopt});
    cfg.profiles.push_back(std::move(def));
  }
  return cfg;
}

StatusOr<EndpointPickerConfig> load_endpoint_picker_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open router config '", path, "'"));
  std::stringstream ss;
  ss << in.rdbuf();
  auto cfg = parse_endpoint_picker_config(ss.str());
  if (!cfg.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", cfg.status().message()));
  }
  return cfg;
}

}  // namespace moeserve::router
