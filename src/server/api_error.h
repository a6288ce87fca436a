// OpenAI/vLLM error bodies (vLLM >= 0.10.1 ErrorResponse):
//   {"error":{"message":…,"type":"BadRequestError","param":null,"code":400}}
// `code` is the HTTP status as an integer.
//
// Thread-safety: plain values and pure functions.
#pragma once

#include <optional>
#include <string>

#include "core/status.h"
#include "net/http_error.h"

namespace moeserve::server {

struct ApiError {
  int status = 400;
  std::string type = "BadRequestError";
  std::string message;
  std::optional<std::string> param;  // the offending request field, when known
};

ApiError bad_request(std::string message, std::optional<std::string> param = std::nullopt);
ApiError not_found(std::string message);
ApiError server_error(std::string message);
ApiError unavailable(std::string message);

// Maps a Status from a lower layer: InvalidArgument/OutOfRange/FailedPrecondition → 400,
// NotFound → 404, Unavailable/ResourceExhausted → 503, Unimplemented → 501, else 500.
ApiError error_from_status(const absl::Status& status);

// The JSON object {"error":{…}} serialized (net::error_body).
std::string error_body(const ApiError& error);

}  // namespace moeserve::server
