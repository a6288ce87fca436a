// Server-sent events framing as vLLM writes it: each event is `data: <payload>\n\n` and a
// stream always ends with `data: [DONE]\n\n`.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "nlohmann/json.hpp"

namespace moeserve::net {

// `data: <json>\n\n`; invalid UTF-8 inside strings is replaced by U+FFFD.
std::string sse_event(const nlohmann::ordered_json& payload);
// `data: <payload>\n\n` for a payload that is already one line of text.
std::string sse_data(std::string_view payload);
// `data: [DONE]\n\n`.
std::string sse_done();

// Compact JSON with invalid UTF-8 replaced (what every response body uses).
std::string dump_json(const nlohmann::ordered_json& value);

}  // namespace moeserve::net
