#include "router/plugin_params.h"

#include <algorithm>
#include <cmath>

#include "core/logging.h"

namespace moeserve::router {

bool PluginParams::has(const std::string& key) const {
  return params_.is_object() && params_.contains(key) && !params_[key].is_null();
}

Status PluginParams::error(const std::string& key, const std::string& what) const {
  return absl::InvalidArgumentError(
      absl::StrCat("plugin '", name_, "' (type ", type_, "): parameter '", key, "' ", what));
}

StatusOr<int64_t> PluginParams::get_int(const std::string& key, int64_t def, int64_t min,
                                        int64_t max) const {
  if (!has(key)) return def;
  const auto& v = params_[key];
  int64_t value = 0;
  if (v.is_number_integer()) {
    value = v.get<int64_t>();
  } else if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>() &&
             std::abs(v.get<double>()) < 9e18) {
    value = static_cast<int64_t>(v.get<double>());
  } else {
    return error(key, absl::StrCat("must be an integer, got ", v.dump()));
  }
  if (value < min || value > max) {
    return error(key, absl::StrCat("must be in [", min, ", ", max, "], got ", value));
  }
  return value;
}

StatusOr<double> PluginParams::get_double(const std::string& key, double def, double min,
                                          double max) const {
  if (!has(key)) return def;
  const auto& v = params_[key];
  if (!v.is_number()) return error(key, absl::StrCat("must be a number, got ", v.dump()));
  double value = v.get<double>();
  if (!(value >= min && value <= max)) {
    return error(key, absl::StrCat("must be in [", min, ", ", max, "], got ", value));
  }
  return value;
}

StatusOr<bool> PluginParams::get_bool(const std::string& key, bool def) const {
  if (!has(key)) return def;
  const auto& v = params_[key];
  if (!v.is_boolean()) return error(key, absl::StrCat("must be true or false, got ", v.dump()));
  return v.get<bool>();
}

StatusOr<std::string> PluginParams::get_string(const std::string& key,
                                               const std::string& def) const {
  if (!has(key)) return def;
  const auto& v = params_[key];
  if (!v.is_string()) return error(key, absl::StrCat("must be a string, got ", v.dump()));
  return v.get<std::string>();
}

StatusOr<std::map<std::string, std::string>> PluginParams::get_string_map(
    const std::string& key) const {
  std::map<std::string, std::string> out;
  if (!has(key)) return out;
  const auto& v = params_[key];
  if (!v.is_object()) return error(key, absl::StrCat("must be a mapping, got ", v.dump()));
  for (const auto& [k, item] : v.items()) {
    if (!item.is_string()) {
      return error(key, absl::StrCat("entry '", k, "' must be a string, got ", item.dump()));
    }
    out[k] = item.get<std::string>();
  }
  return out;
}

Status PluginParams::check_known(const std::vector<std::string>& known) const {
  if (params_.is_null()) return absl::OkStatus();
  if (!params_.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("plugin '", name_, "' (type ", type_, "): parameters must be a mapping"));
  }
  for (const auto& [k, v] : params_.items()) {
    if (std::find(known.begin(), known.end(), k) == known.end()) {
      MS_LOG_WARN("plugin '{}' (type {}): parameter '{}' is not used by this router", name_, type_,
                  k);
    }
  }
  return absl::OkStatus();
}

}  // namespace moeserve::router
