// Bounded JSON intake: the one way untrusted JSON (request bodies, upstream responses) enters
// moeserve. A document is checked for size, nesting depth and value count by a non-recursive
// scan before nlohmann's parser builds anything, because what follows a parse is recursive:
// nlohmann's dump(), copies and comparisons recurse once per nesting level, so a 200 KB body of
// `[[[[…` would otherwise overflow the stack of whichever thread touches it.
//
// Errors are absl::Status: ResourceExhausted for a body over `max_bytes` (HTTP 413), and
// InvalidArgument for everything else (too deep, too many values, not JSON: HTTP 400).
// `intake_http_status()` maps them.
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "core/status.h"
#include "nlohmann/json.hpp"

namespace moeserve::net {

struct JsonLimits {
  // Bytes of the document; HTTP layers enforce the same limit on the body (413).
  std::size_t max_bytes = std::size_t{32} << 20;
  // Nesting of arrays and objects; a chat request needs about 5, a tool schema a few dozen.
  int max_depth = 128;
  // Values of any kind (scalars, arrays, objects). Bounds the parsed document's memory
  // (about 16 bytes per value plus strings) independently of how compactly it was written.
  std::size_t max_values = std::size_t{1} << 22;
};

// What the pre-scan measured. Exact for every document the parser accepts (brackets inside
// strings, escaped quotes included, are not structure); for invalid text it is an upper bound.
struct JsonShape {
  std::size_t num_bytes = 0;
  int max_depth = 0;
  std::size_t num_values = 0;
};

// One pass over `text`, no recursion, no allocation. Stops early (returning what it counted so
// far) as soon as a limit of `limits` is exceeded.
JsonShape scan_json(std::string_view text, const JsonLimits& limits);

// OkStatus when `text` is within `limits`; else the error the intake reports for it.
Status check_json_limits(std::string_view text, const JsonLimits& limits);

// 413 for ResourceExhausted (too large), 400 otherwise.
int intake_http_status(const Status& status);

// The error for a document nested deeper than `max_depth`.
Status too_deep_error(int max_depth);

// Checks `limits`, then parses. The parser's own depth callback refuses anything deeper than
// the limit too, so no path builds a document the scan would have refused.
template <typename BasicJson = nlohmann::json>
StatusOr<BasicJson> parse_json(std::string_view text, const JsonLimits& limits = {}) {
  MS_RETURN_IF_ERROR(check_json_limits(text, limits));
  bool too_deep = false;
  const int max_depth = limits.max_depth;
  typename BasicJson::parser_callback_t guard =
      [&too_deep, max_depth](int depth, typename BasicJson::parse_event_t event, BasicJson&) {
        if ((event == BasicJson::parse_event_t::object_start ||
             event == BasicJson::parse_event_t::array_start) &&
            depth >= max_depth) {
          too_deep = true;
          return false;
        }
        return true;
      };
  BasicJson j = BasicJson::parse(text.begin(), text.end(), guard, /*allow_exceptions=*/false);
  if (too_deep) return too_deep_error(max_depth);
  if (j.is_discarded()) return absl::InvalidArgumentError("The body is not valid JSON.");
  return j;
}

}  // namespace moeserve::net
