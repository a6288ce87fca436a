#include "server/api_error.h"

#include "nlohmann/json.hpp"

namespace moeserve::server {

ApiError bad_request(std::string message, std::optional<std::string> param) {
  return ApiError{400, "BadRequestError", std::move(message), std::move(param)};
}

ApiError not_found(std::string message) {
  return ApiError{404, "NotFoundError", std::move(message), std::nullopt};
}

ApiError server_error(std::string message) {
  return ApiError{500, "InternalServerError", std::move(message), std::nullopt};
}

ApiError unavailable(std::string message) {
  return ApiError{503, "ServiceUnavailableError", std::move(message), std::nullopt};
}

ApiError error_from_status(const absl::Status& status) {
  std::string msg(status.message());
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kFailedPrecondition:
      return bad_request(std::move(msg));
    case absl::StatusCode::kNotFound:
      return not_found(std::move(msg));
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kResourceExhausted:
      return unavailable(std::move(msg));
    case absl::StatusCode::kUnimplemented:
      return ApiError{501, "NotImplementedError", std::move(msg), std::nullopt};
    default:
      return server_error(std::move(msg));
  }
}

std::string error_body(const ApiError& error) {
  nlohmann::ordered_json e;
  e["message"] = error.message;
  e["type"] = error.type;
  e["param"] = error.param ? nlohmann::ordered_json(*error.param) : nlohmann::ordered_json();
  e["code"] = error.status;
  nlohmann::ordered_json body;
  body["error"] = std::move(e);
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

const char* http_reason(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Payload Too Large";
    case 415:
      return "Unsupported Media Type";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    default:
      return "Unknown";
  }
}

}  // namespace moeserve::server
