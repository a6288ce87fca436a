// `moeserve serve [MODEL] [flags]`: vLLM's `vllm serve` for one engine.
#pragma once

namespace moeserve {

// The model served when no MODEL is given: looked up relative to the working directory,
// then relative to the executable's folder and its parents (a build tree inside the
// repository).
inline constexpr const char* kDefaultServeModel = "models/demo";

// Parses flags, starts the server and blocks until SIGINT/SIGTERM, then drains in-flight
// requests and returns 0 (non-zero for bad flags or a model that does not load).
int serve_main(int argc, char** argv);

}  // namespace moeserve
