// Why a request finished (vLLM's FinishReason). The engine, the server and the CLI pass the
// enum; its OpenAI string is written only where a response or a metric label is made.
#pragma once

#include <string_view>

namespace moeserve::engine {

enum class FinishReason {
  kStop,    // EOS, a stop token or a stop string
  kLength,  // max_tokens or the model's length
  kAbort,   // aborted (client gone, shutdown)
  kError,   // the engine failed the request
};

// The OpenAI API's (and vLLM's) finish_reason string: "stop", "length", "abort", "error".
constexpr std::string_view finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kAbort:
      return "abort";
    case FinishReason::kError:
      return "error";
  }
  return "error";
}

}  // namespace moeserve::engine
