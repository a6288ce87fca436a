// EndpointPickerConfig: llm-d's router configuration file (apix/config/v1alpha1), parsed from
// YAML into plain structs. Plugin instantiation and llm-d's defaults for missing profile
// handler / picker / weights happen in Scheduler::create (scheduler.h).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "nlohmann/json.hpp"

namespace moeserve::router {

inline constexpr char kApiVersionCurrent[] = "llm-d.ai/v1alpha1";
inline constexpr char kApiVersionLegacy[] = "inference.networking.x-k8s.io/v1alpha1";

struct PluginSpec {
  std::string type;
  std::string name;           // defaults to type
  nlohmann::json parameters;  // null when absent
};

struct ProfilePluginRef {
  std::string plugin_ref;
  std::optional<double> weight;  // scorers only; llm-d's default is 1
};

struct ProfileSpec {
  std::string name;
  std::vector<ProfilePluginRef> plugins;
};

struct EndpointPickerConfig {
  std::string api_version = kApiVersionCurrent;
  std::string kind = "EndpointPickerConfig";
  std::vector<PluginSpec> plugins;
  std::vector<ProfileSpec> profiles;
};

// Parses YAML text. Checks structure (kinds, required fields, duplicate names); plugin types
// and parameters are checked when the scheduler is built. Empty text gives the default config.
StatusOr<EndpointPickerConfig> parse_endpoint_picker_config(std::string_view yaml_text);
StatusOr<EndpointPickerConfig> load_endpoint_picker_config(const std::string& path);

// llm-d's built-in default (loader/defaults.go): queue-scorer w=2,
// kv-cache-utilization-scorer w=2, prefix-cache-scorer w=3 in one profile "default".
EndpointPickerConfig default_endpoint_picker_config();

}  // namespace moeserve::router
