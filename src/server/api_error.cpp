#include "server/api_error.h"

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
  return net::error_body(error.status, error.type, error.message, error.param);
}

}  // namespace moeserve::server
