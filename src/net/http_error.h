// What an HTTP answer of this project says when it fails: the reason phrase of a status
// line, and vLLM's error body (vLLM >= 0.10.1 ErrorResponse):
//   {"error":{"message":…,"type":"BadRequestError","param":null,"code":400}}
// `code` is the HTTP status as an integer. The server, the router and the HTTP server's own
// protocol errors (413, 431, 400) all answer with this body.
//
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace moeserve::net {

// The JSON object {"error":{…}} serialized (invalid UTF-8 in the message is replaced).
std::string error_body(int status, std::string_view type, std::string_view message,
                       const std::optional<std::string>& param = std::nullopt);

// The HTTP reason phrase of a status code ("Bad Request"); "Unknown" for others.
const char* http_reason(int status);

}  // namespace moeserve::net
