// Builds the SchedulingRequest for an OpenAI-style request body. Pure function.
#pragma once

#include <map>
#include <string>

#include "core/status.h"
#include "nlohmann/json.hpp"
#include "router/scheduling_types.h"

namespace moeserve::router {

// `body` must come from the bounded JSON intake (net::parse_json): the chat prompt text is
// messages.dump(), which recurses once per nesting level.
// `body` is the parsed JSON of POST /v1/completions or /v1/chat/completions. Errors (400) for a
// body that is not an object, or lacks `prompt` / `messages`.
StatusOr<SchedulingRequest> make_scheduling_request(const std::string& target_path,
                                                    const nlohmann::json& body,
                                                    std::map<std::string, std::string> headers,
                                                    std::string request_id);

}  // namespace moeserve::router
