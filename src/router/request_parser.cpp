#include "router/request_parser.h"

#include <algorithm>

namespace moeserve::router {

StatusOr<SchedulingRequest> make_scheduling_request(const std::string& target_path,
                                                    const nlohmann::json& body,
                                                    std::map<std::string, std::string> headers,
                                                    std::string request_id) {
  if (!body.is_object()) return absl::InvalidArgumentError("request body must be a JSON object");
  SchedulingRequest req;
  req.request_id = std::move(request_id);
  req.target_path = target_path;
  req.headers = std::move(headers);
  if (body.contains("model") && body["model"].is_string()) req.model = body["model"];
  if (body.contains("cache_salt") && body["cache_salt"].is_string()) {
    req.cache_salt = body["cache_salt"];
  }
  const bool chat = target_path.find("chat") != std::string::npos;
  if (chat) {
    if (!body.contains("messages") || !body["messages"].is_array()) {
      return absl::InvalidArgumentError("'messages' must be a list");
    }
    req.prompt_text = body["messages"].dump();
    return req;
  }
  if (!body.contains("prompt")) return absl::InvalidArgumentError("'prompt' is required");
  const auto& prompt = body["prompt"];
  if (prompt.is_string()) {
    req.prompt_text = prompt.get<std::string>();
    return req;
  }
  req.prompt_text = prompt.dump();
  if (prompt.is_array() && !prompt.empty() &&
      std::all_of(prompt.begin(), prompt.end(), [](const nlohmann::json& t) {
        return t.is_number_integer() && t.get<int64_t>() >= 0 && t.get<int64_t>() <= 0xffffffffLL;
      })) {
    std::vector<uint32_t> tokens;
    tokens.reserve(prompt.size());
    for (const auto& t : prompt) tokens.push_back(static_cast<uint32_t>(t.get<int64_t>()));
    req.prompt_tokens = std::move(tokens);
  }
  return req;
}

}  // namespace moeserve::router
