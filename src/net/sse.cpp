#include "net/sse.h"

namespace moeserve::net {

std::string dump_json(const nlohmann::ordered_json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string sse_data(std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 8);
  out += "data: ";
  out += payload;
  out += "\n\n";
  return out;
}

std::string sse_event(const nlohmann::ordered_json& payload) {
  return sse_data(dump_json(payload));
}

std::string sse_done() {
  return "data: [DONE]\n\n";
}

}  // namespace moeserve::net
