// Type-checked field access for tokenizer.json / tokenizer_config.json. Every failure is an
// InvalidArgument naming the file and the JSON path ("tokenizer.json: model.vocab: expected an
// object, got array"), so a bad file is diagnosable from the message alone; nothing throws.
// Stateless apart from the file name; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"
#include "core/status.h"
#include "nlohmann/json.hpp"

namespace moeserve {

using Json = nlohmann::json;

// Heterogeneous absl hash-map lookups need absl::string_view (not an alias of std's here).
inline absl::string_view as_absl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

class JsonFields {
 public:
  explicit JsonFields(std::string source) : source_(std::move(source)) {}

  const std::string& source() const { return source_; }

  // InvalidArgument "<source>: <path>: <what>".
  Status error(std::string_view path, std::string_view what) const;

  // Path of `key` inside the object at `path` ("model" + "vocab" -> "model.vocab").
  static std::string join(std::string_view path, std::string_view key);
  static std::string index(std::string_view path, size_t i);

  // The member `key` of object `obj`, or nullptr when absent or null.
  static const Json* find(const Json& obj, std::string_view key);

  StatusOr<const Json*> require(const Json& obj, std::string_view key, std::string_view path) const;
  StatusOr<const Json*> require_object(const Json& obj, std::string_view key,
                                       std::string_view path) const;
  StatusOr<const Json*> require_array(const Json& obj, std::string_view key,
                                      std::string_view path) const;
  StatusOr<std::string> require_string(const Json& obj, std::string_view key,
                                       std::string_view path) const;
  // Absent or null -> nullopt; present with another type -> error.
  StatusOr<std::optional<std::string>> optional_string(const Json& obj, std::string_view key,
                                                       std::string_view path) const;
  StatusOr<bool> optional_bool(const Json& obj, std::string_view key, std::string_view path,
                               bool default_value) const;
  // An integer that fits int32 and is >= 0.
  StatusOr<int32_t> require_id(const Json& obj, std::string_view key, std::string_view path) const;
  StatusOr<int32_t> as_id(const Json& value, std::string_view path) const;
  StatusOr<std::string> as_string(const Json& value, std::string_view path) const;

  static const char* type_name(const Json& value);

 private:
  std::string source_;
};

}  // namespace moeserve
