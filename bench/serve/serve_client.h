// HTTP side of `moeserve bench serve`: streams OpenAI-compatible completions and times them.
//
// One connection per request (HTTP/1.1 through net/http_client.h, one I/O thread). Each request is
// sent at its arrival time, then waits for a slot when --max-concurrency is set (so the
// arrival schedule does not shift, as in vLLM). The SSE stream is parsed as bytes arrive:
// the first chunk with text sets TTFT, later text chunks add ITL gaps, the last chunk sets
// E2EL, and the usage chunk gives token counts. A request fails on connection errors,
// non-200 status, an "error" event, or a stream cut before it completes.
//
// Thread-safety: each call runs its own I/O context on the calling thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "serve_dataset.h"
#include "serve_metrics.h"

namespace moeserve::bench {

struct ClientConfig {
  std::string host = "127.0.0.1";
  std::string port = "8000";
  std::string endpoint = "/v1/completions";
  std::string model;
  bool ignore_eos = false;
  std::optional<int64_t> max_concurrency;
  bool progress = true;  // progress bar on stderr
};

struct RunResult {
  std::vector<RequestOutput> outputs;  // in request order
  double duration_s = 0;
};

bool is_chat_endpoint(const std::string& endpoint);

// The JSON body sent for `r`.
nlohmann::json make_request_body(const ClientConfig& c, const SampleRequest& r);

StatusOr<RunResult> run_requests(const ClientConfig& c, const std::vector<SampleRequest>& requests,
                                 const std::vector<double>& arrival_s);

// "id" of the first entry of GET /v1/models.
StatusOr<std::string> fetch_first_model(const std::string& host, const std::string& port);

}  // namespace moeserve::bench
