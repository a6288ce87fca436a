#include "server/openai_service.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "core/logging.h"
#include "net/sse.h"
#include "server/api_error.h"
#include "server/response_format.h"

#ifndef MOESERVE_VERSION
#define MOESERVE_VERSION "0.0.0"
#endif

namespace moeserve::server {
namespace {

net::HttpResponse json_response(const Json& body, int status = 200) {
  net::HttpResponse r;
  r.status = status;
  r.body = net::dump_json(body);
  return r;
}

net::HttpResponse detail_response(int status, const char* detail) {
  return json_response(Json{{"detail", detail}}, status);
}

template <typename T>
const ApiError* as_error(const ApiResult<T>& r) {
  return std::get_if<ApiError>(&r);
}

}  // namespace

StatusOr<std::unique_ptr<OpenAiService>> OpenAiService::create(
    ServiceConfig config, engine::LlmEngine* engine, std::shared_ptr<const Tokenizer> tokenizer,
    ServerMetrics* metrics) {
  if (config.served_model_names.empty()) {
    return absl::InvalidArgumentError("at least one served model name is needed");
  }
  if (engine == nullptr || metrics == nullptr) {
    return absl::InvalidArgumentError("OpenAiService needs an engine and metrics");
  }
  std::unique_ptr<OpenAiService> s(new OpenAiService());
  if (tokenizer && !tokenizer->chat_template().empty()) {
    auto tmpl = ChatTemplate::parse(tokenizer->chat_template());
    if (!tmpl.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("the model's chat template does not parse: ", tmpl.status().message()));
    }
    s->chat_template_.emplace(std::move(*tmpl));
  }
  s->config_ = std::move(config);
  s->engine_ = engine;
  s->tokenizer_ = std::move(tokenizer);
  s->metrics_ = metrics;
  s->created_ = unix_seconds();
  s->vocab_size_ = engine->model_config().vocab_size;
  if (s->tokenizer_) s->vocab_size_ = std::max(s->vocab_size_, s->tokenizer_->vocab_size());
  JobContext& jc = s->job_context_;
  jc.engine = engine;
  jc.tokenizer = s->tokenizer_;
  jc.metrics = metrics;
  jc.model_name = s->config_.served_model_names.front();
  jc.enable_prompt_tokens_details = s->config_.enable_prompt_tokens_details;
  jc.enable_force_include_usage = s->config_.enable_force_include_usage;
  jc.retry_after_seconds = s->config_.retry_after_seconds;
  return s;
}

void OpenAiService::handle(net::HttpRequest req, std::shared_ptr<net::Responder> responder) {
  try {
    const std::string& path = req.path;
    const bool is_get = req.method == "GET";
    const bool is_post = req.method == "POST";
    if (config_.api_key && (path == "/v1" || absl::StartsWith(path, "/v1/"))) {
      auto auth = req.header("authorization");
      if (!auth || *auth != "Bearer " + *config_.api_key) {
        responder->send(json_response(Json{{"error", "Unauthorized"}}, 401));
        return;
      }
    }
    auto need = [&](bool ok) {
      if (!ok) responder->send(detail_response(405, "Method Not Allowed"));
      return ok;
    };
    if (path == "/health") {
      if (!need(is_get)) return;
      net::HttpResponse r;
      r.status = engine_->healthy() ? 200 : 503;
      r.content_type = "application/json";
      responder->send(std::move(r));
      return;
    }
    if (path == "/version") {
      if (need(is_get)) responder->send(json_response(Json{{"version", MOESERVE_VERSION}}));
      return;
    }
    if (path == "/metrics") {
      if (!need(is_get)) return;
      net::HttpResponse r;
      r.content_type = "text/plain; version=0.0.4; charset=utf-8";
      r.body = metrics_->render(engine_->stats());
      responder->send(std::move(r));
      return;
    }
    if (path == "/eplb/load") {
      if (!need(is_get)) return;
      if (auto load = engine_->expert_load()) {
        responder->send(json_response(expert_load_json(*load)));
      } else {
        responder->send(detail_response(404, "The model has no MoE layers."));
      }
      return;
    }
    if (path == "/v1/models") {
      if (need(is_get)) responder->send(handle_models());
      return;
    }
    const bool post_route = path == "/v1/completions" || path == "/v1/chat/completions" ||
                            path == "/tokenize" || path == "/detokenize";
    if (!post_route) {
      responder->send(detail_response(404, "Not Found"));
      return;
    }
    if (!need(is_post)) return;
    ApiResult<Json> body = parse_json_body(req.body, config_.json_limits);
    if (const ApiError* e = as_error(body)) {
      responder->send(error_response(*e));
      return;
    }
    const Json& json = std::get<Json>(body);
    if (path == "/tokenize") {
      responder->send(handle_tokenize(json));
    } else if (path == "/detokenize") {
      responder->send(handle_detokenize(json));
    } else if (draining_.load() || !engine_->healthy()) {
      responder->send(error_response(unavailable(draining_.load() ? "The server is shutting down."
                                                                  : "The engine is not running."),
                                     config_.retry_after_seconds));
    } else if (path == "/v1/completions") {
      handle_completion(json, responder);
    } else {
      handle_chat(json, responder);
    }
  } catch (const std::exception& e) {
    MS_LOG_ERROR("request handler failed: {}", e.what());
    responder->send(error_response(server_error(absl::StrCat("internal error: ", e.what()))));
  }
}

net::HttpResponse OpenAiService::handle_models() const {
  Json data = Json::array();
  for (const auto& name : config_.served_model_names) {
    data.push_back(model_card(name, config_.model_root, engine_->max_model_len(), created_));
  }
  return json_response(Json{{"object", "list"}, {"data", data}});
}

std::optional<ApiError> OpenAiService::check_model(const std::optional<std::string>& model) const {
  if (!model) return std::nullopt;
  for (const auto& n : config_.served_model_names) {
    if (n == *model) return std::nullopt;
  }
  return not_found(absl::StrCat("The model `", *model, "` does not exist."));
}

std::optional<ApiError> OpenAiService::check_capacity(const GenerationRequest& gen,
                                                      size_t num_prompts) const {
  if (auto e = check_logprobs(gen.params.logprobs, config_.max_logprobs, vocab_size_)) return e;
  const int64_t sequences = static_cast<int64_t>(num_prompts) * gen.params.n;
  const int32_t queue = engine_->config().scheduler.max_waiting_requests;
  if (queue > 0 && sequences > queue) {
    return bad_request(
        absl::StrCat("This request asks for ", sequences, " sequences (", num_prompts,
                     " prompt(s) x n=", gen.params.n, "), more than the engine queues at once (",
                     queue, ", --max-waiting-requests)."),
        "n");
  }
  return std::nullopt;
}

StatusOr<std::string> OpenAiService::render_chat(const Json& messages, bool add_generation_prompt,
                                                 bool continue_final_message,
                                                 const std::optional<std::string>& request_template,
                                                 const Json& kwargs, const Json& tools) const {
  std::optional<ChatTemplate> parsed;
  const ChatTemplate* tmpl = chat_template_ ? &*chat_template_ : nullptr;
  if (request_template) {
    auto t = ChatTemplate::parse(*request_template);
    if (!t.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("chat_template does not parse: ", t.status().message()));
    }
    parsed.emplace(std::move(*t));
    tmpl = &*parsed;
  }
  if (tmpl == nullptr) {
    return absl::InvalidArgumentError(
        "As of transformers v4.44, default chat template is no longer allowed, so you must "
        "provide a chat template if the tokenizer does not define one.");
  }
  std::string bos, eos;
  if (tokenizer_ && tokenizer_->bos_id())
    bos = std::string(tokenizer_->id_to_token(*tokenizer_->bos_id()));
  if (tokenizer_ && tokenizer_->eos_id())
    eos = std::string(tokenizer_->id_to_token(*tokenizer_->eos_id()));
  Json extra = kwargs.is_object() ? kwargs : Json::object();
  if (!tools.is_null()) extra["tools"] = tools;
  MS_ASSIGN_OR_RETURN(std::string text,
                      apply_chat_template(*tmpl, messages, add_generation_prompt, bos, eos, extra));
  if (continue_final_message) {
    const Json& last = messages.back();
    auto c = last.find("content");
    std::string content = (c != last.end() && c->is_string()) ? c->get<std::string>() : "";
    const absl::string_view stripped_sv = absl::StripAsciiWhitespace(content);
    const std::string stripped(stripped_sv);
    const size_t pos = stripped.empty() ? std::string::npos : text.rfind(stripped);
    if (pos == std::string::npos) {
      return absl::InvalidArgumentError(
          "continue_final_message is set but the final message does not appear in the chat "
          "after applying the chat template!");
    }
    text.resize(pos + stripped.size());
  }
  return text;
}

std::optional<ApiError> OpenAiService::check_token_ids(const std::vector<int32_t>& ids) const {
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size_) {
      return bad_request(absl::StrCat("Token id ", id, " is out of vocabulary"), "prompt");
    }
  }
  return std::nullopt;
}

std::optional<ApiError> OpenAiService::prepare_prompt(const GenerationRequest& gen,
                                                      JobPrompt* prompt) const {
  auto& ids = prompt->token_ids;
  if (gen.truncate_prompt_tokens) {
    const int64_t k =
        *gen.truncate_prompt_tokens == -1 ? engine_->max_model_len() : *gen.truncate_prompt_tokens;
    if (k > 0 && static_cast<int64_t>(ids.size()) > k) ids.erase(ids.begin(), ids.end() - k);
  }
  const engine::InputProcessor& processor = engine_->input_processor();
  if (Status st = processor.check_prompt(ids); !st.ok()) {
    return bad_request(std::string(st.message()), "prompt");
  }
  engine::RequestInputs in;
  in.prompt_token_ids = ids;
  in.params = gen.params;
  in.sampling = gen.sampling;
  in.max_tokens = gen.max_tokens;
  StatusOr<engine::SamplingParams> p = processor.process(in);
  if (!p.ok()) return bad_request(std::string(p.status().message()));
  prompt->params = std::move(*p);
  return std::nullopt;
}

namespace {

JobSpec base_spec(const GenerationRequest& gen, const JobContext& jc, JobKind kind) {
  JobSpec spec;
  spec.kind = kind;
  spec.id = random_id(kind == JobKind::kCompletion ? "cmpl-" : "chatcmpl-");
  spec.n = gen.params.n;
  spec.stream = gen.stream;
  const bool usage_requested = gen.stream_options && gen.stream_options->include_usage;
  spec.include_usage = gen.stream && (usage_requested || jc.enable_force_include_usage);
  spec.continuous_usage_stats =
      spec.include_usage && gen.stream_options && gen.stream_options->continuous_usage_stats;
  spec.cache_salt = gen.cache_salt;
  return spec;
}

}  // namespace

void OpenAiService::handle_completion(const Json& body, std::shared_ptr<net::Responder> responder) {
  ApiResult<CompletionRequest> parsed = parse_completion_request(body);
  if (const ApiError* e = as_error(parsed)) return responder->send(error_response(*e));
  CompletionRequest& req = std::get<CompletionRequest>(parsed);
  if (auto e = check_model(req.gen.model)) return responder->send(error_response(*e));
  if (auto e = check_capacity(req.gen, req.prompts.size())) {
    return responder->send(error_response(*e));
  }
  JobSpec spec = base_spec(req.gen, job_context_, JobKind::kCompletion);
  spec.logprobs = req.gen.params.logprobs.has_value();
  spec.num_top_logprobs = req.gen.params.logprobs.value_or(0);
  for (const PromptInput& in : req.prompts) {
    JobPrompt p;
    if (in.text) {
      if (!tokenizer_) {
        return responder->send(error_response(
            bad_request("This model has no tokenizer; send the prompt as token ids.", "prompt")));
      }
      p.token_ids = tokenizer_->encode(*in.text, req.gen.add_special_tokens);
    } else {
      p.token_ids = in.token_ids;
    }
    if (auto e = prepare_prompt(req.gen, &p)) return responder->send(error_response(*e));
    if (req.gen.echo) {
      p.echo_text =
          in.text
              ? *in.text
              : (tokenizer_ ? tokenizer_->decode(p.token_ids, req.gen.params.skip_special_tokens)
                            : std::string());
    }
    spec.prompts.push_back(std::move(p));
  }
  start_generation_job(&job_context_, std::move(spec), std::move(responder));
}

void OpenAiService::handle_chat(const Json& body, std::shared_ptr<net::Responder> responder) {
  ApiResult<ChatCompletionRequest> parsed = parse_chat_request(body);
  if (const ApiError* e = as_error(parsed)) return responder->send(error_response(*e));
  ChatCompletionRequest& req = std::get<ChatCompletionRequest>(parsed);
  if (auto e = check_model(req.gen.model)) return responder->send(error_response(*e));
  if (auto e = check_capacity(req.gen, 1)) return responder->send(error_response(*e));
  if (!tokenizer_) {
    return responder->send(
        error_response(bad_request("This model has no tokenizer; use "
                                   "/v1/completions with token ids.")));
  }
  auto text = render_chat(req.messages, req.add_generation_prompt, req.continue_final_message,
                          req.chat_template, req.chat_template_kwargs, req.tools);
  if (!text.ok())
    return responder->send(error_response(bad_request(std::string(text.status().message()))));
  JobSpec spec = base_spec(req.gen, job_context_, JobKind::kChat);
  spec.logprobs = req.logprobs;
  spec.num_top_logprobs = req.top_logprobs;
  JobPrompt p;
  p.token_ids = tokenizer_->encode(*text, req.gen.add_special_tokens);
  if (auto e = prepare_prompt(req.gen, &p)) return responder->send(error_response(*e));
  if (req.gen.echo) {
    const Json& last = req.messages.back();
    auto role = last.find("role");
    auto content = last.find("content");
    if (role != last.end() && *role == "assistant" && content != last.end() &&
        content->is_string()) {
      p.echo_text = content->get<std::string>();
    }
  }
  spec.prompts.push_back(std::move(p));
  start_generation_job(&job_context_, std::move(spec), std::move(responder));
}

net::HttpResponse OpenAiService::handle_tokenize(const Json& body) const {
  ApiResult<TokenizeRequest> parsed = parse_tokenize_request(body);
  if (const ApiError* e = as_error(parsed)) return error_response(*e);
  const TokenizeRequest& req = std::get<TokenizeRequest>(parsed);
  if (auto e = check_model(req.model)) return error_response(*e);
  if (!tokenizer_) return error_response(bad_request("This model has no tokenizer."));
  std::string text = req.prompt;
  if (req.is_chat) {
    auto rendered = render_chat(req.messages, req.add_generation_prompt, req.continue_final_message,
                                req.chat_template, req.chat_template_kwargs, req.tools);
    if (!rendered.ok())
      return error_response(bad_request(std::string(rendered.status().message())));
    text = std::move(*rendered);
  }
  const std::vector<int32_t> ids = tokenizer_->encode(text, req.add_special_tokens);
  Json out;
  out["count"] = ids.size();
  out["max_model_len"] = engine_->max_model_len();
  out["tokens"] = ids;
  if (req.return_token_strs) {
    Json strs = Json::array();
    for (int32_t id : ids) strs.push_back(std::string(tokenizer_->id_to_token(id)));
    out["token_strs"] = std::move(strs);
  }
  return json_response(out);
}

net::HttpResponse OpenAiService::handle_detokenize(const Json& body) const {
  ApiResult<DetokenizeRequest> parsed = parse_detokenize_request(body);
  if (const ApiError* e = as_error(parsed)) return error_response(*e);
  const DetokenizeRequest& req = std::get<DetokenizeRequest>(parsed);
  if (auto e = check_model(req.model)) return error_response(*e);
  if (!tokenizer_) return error_response(bad_request("This model has no tokenizer."));
  if (auto e = check_token_ids(req.tokens)) {
    e->param = "tokens";
    return error_response(*e);
  }
  return json_response(
      Json{{"prompt", tokenizer_->decode(req.tokens, /*skip_special_tokens=*/false)}});
}

}  // namespace moeserve::server
