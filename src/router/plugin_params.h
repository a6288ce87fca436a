// Typed access to a plugin's `parameters` with errors that name the plugin and parameter,
// e.g. "plugin 'prefix-cache-scorer' (type prefix-cache-scorer): parameter
// 'lruCapacityPerServer' must be an integer >= 1, got \"abc\"". Not thread-safe (used while
// building plugins).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/status.h"
#include "nlohmann/json.hpp"

namespace moeserve::router {

class PluginParams {
 public:
  PluginParams(std::string plugin_name, std::string plugin_type, nlohmann::json params)
      : name_(std::move(plugin_name)), type_(std::move(plugin_type)), params_(std::move(params)) {}

  bool has(const std::string& key) const;
  StatusOr<int64_t> get_int(const std::string& key, int64_t def, int64_t min, int64_t max) const;
  StatusOr<double> get_double(const std::string& key, double def, double min, double max) const;
  StatusOr<bool> get_bool(const std::string& key, bool def) const;
  StatusOr<std::string> get_string(const std::string& key, const std::string& def) const;
  StatusOr<std::map<std::string, std::string>> get_string_map(const std::string& key) const;
  const nlohmann::json& raw() const { return params_; }

  // An error "plugin 'n' (type t): parameter 'key' <what>".
  Status error(const std::string& key, const std::string& what) const;
  // Parameters must be a mapping (or absent); names outside `known` are logged as warnings,
  // since llm-d plugins accept options this router does not implement.
  Status check_known(const std::vector<std::string>& known) const;

 private:
  std::string name_;
  std::string type_;
  nlohmann::json params_;
};

}  // namespace moeserve::router
