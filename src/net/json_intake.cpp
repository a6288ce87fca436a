#include "net/json_intake.h"

#include "absl/strings/str_cat.h"

namespace moeserve::net {

JsonShape scan_json(std::string_view text, const JsonLimits& limits) {
  JsonShape shape;
  shape.num_bytes = text.size();
  if (text.size() > limits.max_bytes) return shape;
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  bool in_scalar = false;  // inside a number or literal (true/false/null)
  for (const char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        in_scalar = false;
        ++shape.num_values;
        break;
      case '[':
      case '{':
        in_scalar = false;
        ++shape.num_values;
        if (++depth > shape.max_depth) shape.max_depth = depth;
        if (depth > limits.max_depth) return shape;
        break;
      case ']':
      case '}':
        in_scalar = false;
        if (depth > 0) --depth;
        break;
      case ',':
      case ':':
      case ' ':
      case '\t':
      case '\n':
      case '\r':
        in_scalar = false;
        break;
      default:
        if (!in_scalar) {
          in_scalar = true;
          ++shape.num_values;
        }
        break;
    }
    if (shape.num_values > limits.max_values) return shape;
  }
  return shape;
}

Status too_deep_error(int max_depth) {
  return absl::InvalidArgumentError(
      absl::StrCat("The JSON body nests arrays/objects deeper than ", max_depth, " levels."));
}

Status check_json_limits(std::string_view text, const JsonLimits& limits) {
  const JsonShape shape = scan_json(text, limits);
  if (shape.num_bytes > limits.max_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat("The JSON body is ", shape.num_bytes,
                                                     " bytes; the limit is ", limits.max_bytes,
                                                     " bytes."));
  }
  if (shape.max_depth > limits.max_depth) return too_deep_error(limits.max_depth);
  if (shape.num_values > limits.max_values) {
    return absl::InvalidArgumentError(
        absl::StrCat("The JSON body holds more than ", limits.max_values, " values."));
  }
  return absl::OkStatus();
}

int intake_http_status(const Status& status) {
  return absl::IsResourceExhausted(status) ? 413 : 400;
}

}  // namespace moeserve::net
