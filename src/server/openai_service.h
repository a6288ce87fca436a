// The OpenAI-compatible API as vLLM serves it (routes, auth, model names, tokenization, chat
// templates, max_tokens resolution) on top of an LlmEngine: an net::HttpHandler for
// net::HttpServer.
//
// Routes: POST /v1/completions, POST /v1/chat/completions, GET /v1/models, GET /health,
// GET /version, POST /tokenize, POST /detokenize, GET /metrics. With an API key, /v1/*
// needs `Authorization: Bearer <key>` (else 401 {"error":"Unauthorized"}).
//
// Thread-safety: handle() may run concurrently on several I/O threads; the service's own
// state is immutable after create() except the draining flag (atomic).
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "chat_template/chat_template.h"
#include "engine/llm_engine.h"
#include "engine/sampling_params.h"
#include "model/config.h"  // before llm_engine.h, which uses ModelConfig
#include "net/http_server.h"
#include "server/generation_job.h"
#include "server/protocol.h"
#include "server/server_metrics.h"
#include "tokenizer/tokenizer.h"

namespace moeserve::server {

struct ServiceConfig {
  std::vector<std::string> served_model_names;  // first one is used in responses; non-empty
  std::string model_root;                       // "root" of the model card (the model path)
  std::optional<std::string> api_key;
  bool enable_prompt_tokens_details = false;
  bool enable_force_include_usage = false;
  int retry_after_seconds = 1;
  // --max-logprobs: logprobs / top_logprobs above it get vLLM's 400; -1 allows the vocabulary.
  int32_t max_logprobs = 20;
  // Request bodies go through the bounded JSON intake with these limits.
  net::JsonLimits json_limits;
};

class OpenAiService final : public net::HttpHandler {
 public:
  // `engine` and `metrics` must outlive the service; `tokenizer` may be null (token-id
  // prompts only). Fails when the tokenizer's chat template does not parse.
  static StatusOr<std::unique_ptr<OpenAiService>> create(ServiceConfig config,
                                                         engine::LlmEngine* engine,
                                                         std::shared_ptr<const Tokenizer> tokenizer,
                                                         ServerMetrics* metrics);

  void handle(net::HttpRequest request, std::shared_ptr<net::Responder> responder) override;

  // While draining, new generation requests get 503 (in-flight ones finish).
  void set_draining(bool draining) { draining_.store(draining); }

 private:
  OpenAiService() = default;

  net::HttpResponse handle_models() const;
  net::HttpResponse handle_tokenize(const Json& body) const;
  net::HttpResponse handle_detokenize(const Json& body) const;
  void handle_completion(const Json& body, std::shared_ptr<net::Responder> responder);
  void handle_chat(const Json& body, std::shared_ptr<net::Responder> responder);

  std::optional<ApiError> check_model(const std::optional<std::string>& model) const;
  // Bounds on what a generation request may make the server hold, checked before anything is
  // allocated per choice: logprobs against --max-logprobs, and prompts x n against what the
  // engine's waiting queue can ever take (--max-waiting-requests).
  std::optional<ApiError> check_capacity(const GenerationRequest& gen, size_t num_prompts) const;
  // Renders `messages` with the request's or the tokenizer's template.
  StatusOr<std::string> render_chat(const Json& messages, bool add_generation_prompt,
                                    bool continue_final_message,
                                    const std::optional<std::string>& request_template,
                                    const Json& kwargs, const Json& tools) const;
  // Truncates the prompt as asked, then hands it to the engine's InputProcessor, which
  // checks it and resolves the sampling params.
  std::optional<ApiError> prepare_prompt(const GenerationRequest& gen, JobPrompt* prompt) const;
  // /detokenize: ids inside the tokenizer's (or the model's, if larger) vocabulary.
  std::optional<ApiError> check_token_ids(const std::vector<int32_t>& ids) const;

  ServiceConfig config_;
  engine::LlmEngine* engine_ = nullptr;
  std::shared_ptr<const Tokenizer> tokenizer_;
  ServerMetrics* metrics_ = nullptr;
  std::optional<ChatTemplate> chat_template_;
  JobContext job_context_;
  int64_t created_ = 0;
  int64_t vocab_size_ = 0;
  std::atomic<bool> draining_{false};
};

}  // namespace moeserve::server
