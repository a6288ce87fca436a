// One /v1/completions or /v1/chat/completions request in flight: fans out into prompts × n
// engine requests, gathers their outputs on the connection's strand, and answers with one
// JSON body or an SSE stream (vLLM's chunk shapes). A client that disconnects aborts every
// engine request of the job; engine errors become an error body (or an error event, once
// streaming started).
//
// Threads: the engine calls the job's sinks on its loop thread; they only post the output to
// the connection's strand, where all job state lives. Never blocks the engine thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/llm_engine.h"
#include "engine/sampling_params.h"
#include "model/config.h"  // before llm_engine.h, which uses ModelConfig
#include "net/http_server.h"
#include "server/api_error.h"
#include "server/server_metrics.h"
#include "tokenizer/tokenizer.h"

namespace moeserve::server {

// What every job shares (owned by the service; outlives all jobs).
struct JobContext {
  engine::LlmEngine* engine = nullptr;
  std::shared_ptr<const Tokenizer> tokenizer;  // may be null
  ServerMetrics* metrics = nullptr;
  std::string model_name;  // the first served model name
  bool enable_prompt_tokens_details = false;
  bool enable_force_include_usage = false;
  int retry_after_seconds = 1;
};

enum class JobKind { kCompletion, kChat };

struct JobPrompt {
  std::vector<int32_t> token_ids;
  engine::SamplingParams params;  // resolved: defaults, max_tokens, validated; n kept
  std::string echo_text;          // prepended to each choice's text (echo)
};

struct JobSpec {
  JobKind kind = JobKind::kCompletion;
  std::string id;  // "cmpl-…" / "chatcmpl-…"
  std::vector<JobPrompt> prompts;
  int32_t n = 1;
  bool stream = false;
  bool include_usage = false;           // final usage chunk (stream)
  bool continuous_usage_stats = false;  // usage on every chunk (stream)
  bool logprobs = false;
  int32_t num_top_logprobs = 0;  // -1: all returned
  std::string cache_salt;
};

// Submits the engine requests and answers through `responder` (possibly right away with an
// error: 503 + Retry-After when the engine queue is full, 400 for prompts it refuses).
void start_generation_job(const JobContext* context, JobSpec spec,
                          std::shared_ptr<net::Responder> responder);

// A complete error response (JSON body; Retry-After added for 503).
net::HttpResponse error_response(const ApiError& error, int retry_after_seconds = 1);

}  // namespace moeserve::server
