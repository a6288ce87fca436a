#include "tokenizer/tokenizer_json.h"

#include <limits>

namespace moeserve {

Status JsonFields::error(std::string_view path, std::string_view what) const {
  return absl::InvalidArgumentError(absl::StrCat(source_, ": ", as_absl(path), ": ", as_absl(what)));
}

std::string JsonFields::join(std::string_view path, std::string_view key) {
  return path.empty() ? std::string(key) : absl::StrCat(as_absl(path), ".", as_absl(key));
}

std::string JsonFields::index(std::string_view path, size_t i) {
  return absl::StrCat(as_absl(path), "[", i, "]");
}

const char* JsonFields::type_name(const Json& value) { return value.type_name(); }

const Json* JsonFields::find(const Json& obj, std::string_view key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

StatusOr<const Json*> JsonFields::require(const Json& obj, std::string_view key,
                                          std::string_view path) const {
  if (!obj.is_object()) {
    return error(path, absl::StrCat("expected an object, got ", type_name(obj)));
  }
  const Json* v = find(obj, key);
  if (v == nullptr) return error(join(path, key), "missing");
  return v;
}

StatusOr<const Json*> JsonFields::require_object(const Json& obj, std::string_view key,
                                                 std::string_view path) const {
  MS_ASSIGN_OR_RETURN(const Json* v, require(obj, key, path));
  if (!v->is_object()) {
    return error(join(path, key), absl::StrCat("expected an object, got ", type_name(*v)));
  }
  return v;
}

StatusOr<const Json*> JsonFields::require_array(const Json& obj, std::string_view key,
                                                std::string_view path) const {
  MS_ASSIGN_OR_RETURN(const Json* v, require(obj, key, path));
  if (!v->is_array()) {
    return error(join(path, key), absl::StrCat("expected an array, got ", type_name(*v)));
  }
  return v;
}

StatusOr<std::string> JsonFields::as_string(const Json& value, std::string_view path) const {
  if (!value.is_string()) {
    return error(path, absl::StrCat("expected a string, got ", type_name(value)));
  }
  return value.get_ref<const std::string&>();
}

StatusOr<std::string> JsonFields::require_string(const Json& obj, std::string_view key,
                                                 std::string_view path) const {
  MS_ASSIGN_OR_RETURN(const Json* v, require(obj, key, path));
  return as_string(*v, join(path, key));
}

StatusOr<std::optional<std::string>> JsonFields::optional_string(const Json& obj,
                                                                 std::string_view key,
                                                                 std::string_view path) const {
  const Json* v = find(obj, key);
  if (v == nullptr) return std::optional<std::string>();
  MS_ASSIGN_OR_RETURN(std::string s, as_string(*v, join(path, key)));
  return std::optional<std::string>(std::move(s));
}

StatusOr<bool> JsonFields::optional_bool(const Json& obj, std::string_view key,
                                         std::string_view path, bool default_value) const {
  const Json* v = find(obj, key);
  if (v == nullptr) return default_value;
  if (!v->is_boolean()) {
    return error(join(path, key), absl::StrCat("expected a boolean, got ", type_name(*v)));
  }
  return v->get<bool>();
}

StatusOr<int32_t> JsonFields::as_id(const Json& value, std::string_view path) const {
  if (value.is_number_unsigned() &&
      value.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int32_t>::max())) {
    return static_cast<int32_t>(value.get<uint64_t>());
  }
  if (value.is_number_integer() && value.get<int64_t>() >= 0 &&
      value.get<int64_t>() <= std::numeric_limits<int32_t>::max()) {
    return static_cast<int32_t>(value.get<int64_t>());
  }
  return error(path, absl::StrCat("expected a token id (integer in [0, 2^31)), got ",
                                  value.is_number() ? value.dump() : type_name(value)));
}

StatusOr<int32_t> JsonFields::require_id(const Json& obj, std::string_view key,
                                         std::string_view path) const {
  MS_ASSIGN_OR_RETURN(const Json* v, require(obj, key, path));
  return as_id(*v, join(path, key));
}

}  // namespace moeserve
