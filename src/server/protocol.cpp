#include "server/protocol.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "net/json_intake.h"

namespace moeserve::server {
namespace {

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
constexpr int64_t kInt32Min = std::numeric_limits<int32_t>::min();
constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kInt64Min = std::numeric_limits<int64_t>::min();

using MaybeError = std::optional<ApiError>;

#define MS_API_TRY(expr)          \
  do {                            \
    MaybeError _ms_err = (expr);  \
    if (_ms_err) return *_ms_err; \
  } while (0)

std::string short_dump(const Json& v) {
  std::string s = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (s.size() > 64) s = s.substr(0, 61) + "...";
  return s;
}

ApiError type_error(absl::string_view field, absl::string_view expected, const Json& got) {
  return bad_request(absl::StrCat(field, ": Input should be ", expected, ", got ", short_dump(got)),
                     std::string(field));
}

// Integer value of a JSON number that is integral and within [lo, hi]; clamps instead of
// failing when `clamp` is set (for limits that are min()-ed later anyway).
MaybeError read_integer(absl::string_view field, const Json& v, int64_t lo, int64_t hi, bool clamp,
                        int64_t* out) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(hi)) {
      if (!clamp) {
        return bad_request(absl::StrCat(field, ": Input should be less than or equal to ", hi),
                           std::string(field));
      }
      *out = hi;
      return std::nullopt;
    }
    *out = static_cast<int64_t>(u);
  } else if (v.is_number_integer()) {
    *out = v.get<int64_t>();
  } else if (v.is_number_float()) {
    const double d = v.get<double>();
    if (!std::isfinite(d) || d != std::floor(d)) {
      return type_error(field, "a valid integer", v);
    }
    if (d >= 9.2e18 || d <= -9.2e18) {
      if (!clamp) {
        return bad_request(
            absl::StrCat(field, ": Input should be a valid integer in range, got ", short_dump(v)),
            std::string(field));
      }
      *out = d > 0 ? hi : lo;
      return std::nullopt;
    }
    *out = static_cast<int64_t>(d);
  } else {
    return type_error(field, "a valid integer", v);
  }
  if (*out < lo || *out > hi) {
    if (clamp) {
      *out = *out < lo ? lo : hi;
      return std::nullopt;
    }
    return bad_request(
        absl::StrCat(field, ": Input should be ",
                     *out < lo ? "greater than or equal to " : "less than or equal to ",
                     *out < lo ? lo : hi),
        std::string(field));
  }
  return std::nullopt;
}

// Reads optional fields of one JSON object; absent and null both leave the output alone.
class Reader {
 public:
  explicit Reader(const Json& obj) : obj_(obj) {}

  const Json* find(const char* key) const {
    auto it = obj_.find(key);
    if (it == obj_.end() || it->is_null()) return nullptr;
    return &*it;
  }
  bool has(const char* key) const { return find(key) != nullptr; }

  MaybeError boolean(const char* key, bool* out) const {
    const Json* v = find(key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_boolean()) return type_error(key, "a valid boolean", *v);
    *out = v->get<bool>();
    return std::nullopt;
  }
  MaybeError number(const char* key, std::optional<double>* out) const {
    const Json* v = find(key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_number()) return type_error(key, "a valid number", *v);
    const double d = v->get<double>();
    if (!std::isfinite(d)) return type_error(key, "a finite number", *v);
    *out = d;
    return std::nullopt;
  }
  MaybeError int32(const char* key, std::optional<int32_t>* out, bool clamp = false) const {
    const Json* v = find(key);
    if (v == nullptr) return std::nullopt;
    int64_t x = 0;
    MS_API_TRY(read_integer(key, *v, kInt32Min, kInt32Max, clamp, &x));
    *out = static_cast<int32_t>(x);
    return std::nullopt;
  }
  MaybeError int32(const char* key, int32_t* out) const {
    std::optional<int32_t> v;
    MS_API_TRY(int32(key, &v));
    if (v) *out = *v;
    return std::nullopt;
  }
  MaybeError int64(const char* key, std::optional<int64_t>* out) const {
    const Json* v = find(key);
    if (v == nullptr) return std::nullopt;
    int64_t x = 0;
    MS_API_TRY(read_integer(key, *v, kInt64Min, kInt64Max, false, &x));
    *out = x;
    return std::nullopt;
  }
  MaybeError string(const char* key, std::optional<std::string>* out) const {
    const Json* v = find(key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_string()) return type_error(key, "a valid string", *v);
    *out = v->get<std::string>();
    return std::nullopt;
  }
  MaybeError token_ids(const char* key, std::vector<int32_t>* out) const {
    const Json* v = find(key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_array()) return type_error(key, "a valid list of integers", *v);
    out->clear();
    for (const Json& e : *v) {
      int64_t x = 0;
      MS_API_TRY(read_integer(key, e, 0, kInt32Max, false, &x));
      out->push_back(static_cast<int32_t>(x));
    }
    return std::nullopt;
  }
  // An object field; `out` stays as is when absent/null.
  MaybeError object(const char* key, Json* out) const {
    const Json* v = find(key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_object()) return type_error(key, "a valid dictionary", *v);
    *out = *v;
    return std::nullopt;
  }

 private:
  const Json& obj_;
};

MaybeError check_stop_string(const std::string& s) {
  if (s.size() > kMaxStopStringBytes) {
    return bad_request(absl::StrCat("stop strings must be at most ", kMaxStopStringBytes,
                                    " bytes long, got one of ", s.size(), " bytes."),
                       "stop");
  }
  return std::nullopt;
}

MaybeError parse_stop(const Reader& r, std::vector<std::string>* stop) {
  const Json* v = r.find("stop");
  if (v == nullptr) return std::nullopt;
  if (v->is_string()) {
    MS_API_TRY(check_stop_string(v->get_ref<const std::string&>()));
    stop->push_back(v->get<std::string>());
    return std::nullopt;
  }
  if (!v->is_array()) return type_error("stop", "a valid string or list of strings", *v);
  if (v->size() > kMaxStopStrings) {
    return bad_request(
        absl::StrCat("stop may hold at most ", kMaxStopStrings, " strings, got ", v->size(), "."),
        "stop");
  }
  for (const Json& s : *v) {
    if (!s.is_string()) return type_error("stop", "a valid list of strings", *v);
    MS_API_TRY(check_stop_string(s.get_ref<const std::string&>()));
    stop->push_back(s.get<std::string>());
  }
  return std::nullopt;
}

// Extras vLLM accepts that this engine cannot honour: a non-empty value is refused rather
// than silently ignored.
MaybeError refuse_unsupported(const Reader& r) {
  for (const char* key : {"logit_bias", "allowed_token_ids", "bad_words", "structured_outputs",
                          "guided_json", "guided_regex", "guided_choice", "guided_grammar",
                          "response_format", "prompt_embeds", "kv_transfer_params"}) {
    const Json* v = r.find(key);
    if (v == nullptr) continue;
    if ((v->is_object() || v->is_array()) && v->empty()) continue;
    if (std::string_view(key) == "response_format" && v->is_object()) {
      auto t = v->find("type");
      if (t != v->end() && t->is_string() && t->get<std::string>() == "text") continue;
    }
    return bad_request(absl::StrCat(key, " is not supported by this server"), std::string(key));
  }
  return std::nullopt;
}

// Fields both request kinds share. `max_tokens_key` is read by the caller.
MaybeError parse_common(const Json& body, GenerationRequest* g) {
  Reader r(body);
  MS_API_TRY(r.string("model", &g->model));
  MS_API_TRY(r.int32("n", &g->params.n));
  if (g->params.n > max_n_sequences()) {
    return bad_request(absl::StrCat("n must be at most ", max_n_sequences(), ", got ", g->params.n,
                                    ". To increase this limit, set the VLLM_MAX_N_SEQUENCES "
                                    "environment variable."),
                       "n");
  }
  MS_API_TRY(r.number("temperature", &g->sampling.temperature));
  MS_API_TRY(r.number("top_p", &g->sampling.top_p));
  MS_API_TRY(r.int32("top_k", &g->sampling.top_k));
  MS_API_TRY(r.number("min_p", &g->sampling.min_p));
  MS_API_TRY(r.number("repetition_penalty", &g->sampling.repetition_penalty));
  MS_API_TRY(r.number("presence_penalty", &g->sampling.presence_penalty));
  MS_API_TRY(r.number("frequency_penalty", &g->sampling.frequency_penalty));
  MS_API_TRY(r.int64("seed", &g->params.seed));
  MS_API_TRY(parse_stop(r, &g->params.stop));
  MS_API_TRY(r.token_ids("stop_token_ids", &g->params.stop_token_ids));
  MS_API_TRY(r.boolean("ignore_eos", &g->params.ignore_eos));
  MS_API_TRY(r.int32("min_tokens", &g->params.min_tokens));
  MS_API_TRY(r.boolean("skip_special_tokens", &g->params.skip_special_tokens));
  MS_API_TRY(r.boolean("spaces_between_special_tokens", &g->params.spaces_between_special_tokens));
  MS_API_TRY(r.boolean("include_stop_str_in_output", &g->params.include_stop_str_in_output));
  MS_API_TRY(r.boolean("stream", &g->stream));
  MS_API_TRY(r.boolean("echo", &g->echo));
  MS_API_TRY(r.int32("truncate_prompt_tokens", &g->truncate_prompt_tokens, /*clamp=*/true));
  if (g->truncate_prompt_tokens && *g->truncate_prompt_tokens < 1 &&
      *g->truncate_prompt_tokens != -1) {
    return bad_request("truncate_prompt_tokens must be an integer >= 1 or -1, got " +
                           std::to_string(*g->truncate_prompt_tokens),
                       "truncate_prompt_tokens");
  }
  std::optional<int32_t> prompt_logprobs;
  MS_API_TRY(r.int32("prompt_logprobs", &prompt_logprobs));
  if (prompt_logprobs) {
    if (g->stream) {
      return bad_request("`prompt_logprobs` are not available when `stream=True`.",
                         "prompt_logprobs");
    }
    return bad_request("prompt_logprobs is not supported by this server", "prompt_logprobs");
  }
  if (const Json* so = r.find("stream_options")) {
    if (!so->is_object()) return type_error("stream_options", "a valid dictionary", *so);
    if (!g->stream) {
      return bad_request("Stream options can only be defined when `stream=True`.",
                         "stream_options");
    }
    StreamOptions opts;
    Reader sr(*so);
    MS_API_TRY(sr.boolean("include_usage", &opts.include_usage));
    MS_API_TRY(sr.boolean("continuous_usage_stats", &opts.continuous_usage_stats));
    g->stream_options = opts;
  }
  std::optional<std::string> salt;
  MS_API_TRY(r.string("cache_salt", &salt));
  if (salt) {
    if (salt->empty()) {
      return bad_request("Parameter 'cache_salt' must be a non-empty string if provided.",
                         "cache_salt");
    }
    g->cache_salt = *salt;
  }
  MS_API_TRY(refuse_unsupported(r));
  return std::nullopt;
}

// vLLM's SamplingParams validation on the request's own values (defaults filled in), so
// that e.g. temperature=-1 is reported before any model-dependent step.
MaybeError validate_sampling(const GenerationRequest& g) {
  engine::SamplingParams p = g.params;
  engine::apply_sampling_defaults(g.sampling, engine::GenerationDefaults{}, &p);
  p.max_tokens = g.max_tokens;
  absl::Status st = p.normalize_and_validate();
  if (!st.ok()) return bad_request(std::string(st.message()));
  return std::nullopt;
}

MaybeError parse_prompt(const Json& body, std::vector<PromptInput>* prompts) {
  auto it = body.find("prompt");
  const char* kEmpty = "Either prompt or prompt_embeds must be provided and non-empty.";
  if (it == body.end() || it->is_null()) return bad_request(kEmpty, "prompt");
  const Json& p = *it;
  if (p.is_string()) {
    if (p.get_ref<const std::string&>().empty()) return bad_request(kEmpty, "prompt");
    prompts->push_back(PromptInput{p.get<std::string>(), {}});
    return std::nullopt;
  }
  const char* kExpected =
      "a string, a list of strings, a list of token ids or a list of lists "
      "of token ids";
  if (!p.is_array()) return type_error("prompt", kExpected, p);
  if (p.empty()) return bad_request(kEmpty, "prompt");
  if (p[0].is_string()) {
    for (const Json& s : p) {
      if (!s.is_string()) return type_error("prompt", kExpected, p);
      if (s.get_ref<const std::string&>().empty()) return bad_request(kEmpty, "prompt");
      prompts->push_back(PromptInput{s.get<std::string>(), {}});
    }
    return std::nullopt;
  }
  if (p[0].is_array()) {
    for (const Json& ids : p) {
      if (!ids.is_array()) return type_error("prompt", kExpected, p);
      if (ids.empty()) return bad_request(kEmpty, "prompt");
      PromptInput in;
      for (const Json& e : ids) {
        int64_t x = 0;
        MS_API_TRY(read_integer("prompt", e, 0, kInt32Max, false, &x));
        in.token_ids.push_back(static_cast<int32_t>(x));
      }
      prompts->push_back(std::move(in));
    }
    return std::nullopt;
  }
  PromptInput in;
  for (const Json& e : p) {
    if (!e.is_number()) return type_error("prompt", kExpected, p);
    int64_t x = 0;
    MS_API_TRY(read_integer("prompt", e, 0, kInt32Max, false, &x));
    in.token_ids.push_back(static_cast<int32_t>(x));
  }
  prompts->push_back(std::move(in));
  return std::nullopt;
}

// Shared by chat and chat-style tokenize requests.
MaybeError parse_chat_fields(const Json& body, Json* messages, bool* add_generation_prompt,
                             bool* continue_final_message, std::optional<std::string>* tmpl,
                             Json* kwargs, Json* tools) {
  auto it = body.find("messages");
  if (it == body.end() || it->is_null()) return bad_request("messages: Field required", "messages");
  ApiResult<Json> msgs = normalize_messages(*it);
  if (auto* e = std::get_if<ApiError>(&msgs)) return *e;
  *messages = std::move(std::get<Json>(msgs));
  Reader r(body);
  MS_API_TRY(r.boolean("add_generation_prompt", add_generation_prompt));
  MS_API_TRY(r.boolean("continue_final_message", continue_final_message));
  if (*add_generation_prompt && *continue_final_message) {
    return bad_request(
        "Cannot set both `continue_final_message` and `add_generation_prompt` to True.");
  }
  if (*continue_final_message && messages->empty()) {
    return bad_request("continue_final_message needs at least one message.", "messages");
  }
  MS_API_TRY(r.string("chat_template", tmpl));
  MS_API_TRY(r.object("chat_template_kwargs", kwargs));
  if (const Json* t = r.find("tools")) {
    if (!t->is_array()) return type_error("tools", "a valid list", *t);
    for (const Json& tool : *t) {
      if (!tool.is_object()) return type_error("tools", "a list of tool objects", *t);
    }
    if (!t->empty()) *tools = *t;
  }
  return std::nullopt;
}

}  // namespace

int32_t max_n_sequences() {
  static const int32_t value = [] {
    constexpr int32_t kDefault = 16384;  // vLLM's VLLM_MAX_N_SEQUENCES default
    const char* env = std::getenv("VLLM_MAX_N_SEQUENCES");
    if (env == nullptr || *env == '\0') return kDefault;
    char* end = nullptr;
    const long v = std::strtol(env, &end, 10);
    if (end == env || *end != '\0' || v < 1 || v > kInt32Max) return kDefault;
    return static_cast<int32_t>(v);
  }();
  return value;
}

std::optional<ApiError> check_logprobs(std::optional<int32_t> requested, int32_t max_logprobs,
                                       int64_t vocab_size) {
  if (!requested || *requested == 0) return std::nullopt;
  const int64_t num = *requested == -1 ? vocab_size : *requested;
  const int64_t max = max_logprobs == -1 ? vocab_size : max_logprobs;
  if (num <= max) return std::nullopt;
  return bad_request(absl::StrCat("Requested sample logprobs of ", num,
                                  ", which is greater than max allowed: ", max),
                     "logprobs");
}

ApiResult<Json> parse_json_body(std::string_view body, const net::JsonLimits& limits) {
  StatusOr<Json> j = net::parse_json<Json>(body, limits);
  if (!j.ok()) {
    const int status = net::intake_http_status(j.status());
    if (status == 413) {
      return ApiError{413, "PayloadTooLargeError", std::string(j.status().message()), std::nullopt};
    }
    return bad_request(std::string(j.status().message()));
  }
  if (!j->is_object()) {
    return bad_request("The request body must be a JSON object, got " + short_dump(*j));
  }
  return std::move(*j);
}

ApiResult<Json> normalize_messages(const Json& messages) {
  if (!messages.is_array()) return type_error("messages", "a valid list", messages);
  Json out = Json::array();
  for (size_t i = 0; i < messages.size(); ++i) {
    const Json& m = messages[i];
    const std::string field = absl::StrCat("messages[", i, "]");
    if (!m.is_object()) return type_error(field, "a valid dictionary", m);
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) {
      return bad_request(field + ".role: Field required (a string)", "messages");
    }
    Json msg = m;
    auto content = m.find("content");
    if (content != m.end() && content->is_array()) {
      std::string text;
      bool first = true;
      for (const Json& part : *content) {
        if (!part.is_object()) return type_error(field + ".content", "a list of parts", *content);
        auto type = part.find("type");
        if (type == part.end() || !type->is_string()) {
          return bad_request(field + ".content: each part needs a string `type`", "messages");
        }
        const std::string& t = type->get_ref<const std::string&>();
        if (t != "text" && t != "input_text" && t != "output_text") {
          return bad_request(absl::StrCat("Unsupported content part type: ", t), "messages");
        }
        auto txt = part.find("text");
        if (txt == part.end() || !txt->is_string()) {
          return bad_request(field + ".content: a text part needs a string `text`", "messages");
        }
        if (!first) text += "\n";
        first = false;
        text += txt->get_ref<const std::string&>();
      }
      msg["content"] = text;
    } else if (content != m.end() && !content->is_string() && !content->is_null()) {
      return type_error(field + ".content", "a string or a list of content parts", *content);
    }
    out.push_back(std::move(msg));
  }
  return out;
}

ApiResult<CompletionRequest> parse_completion_request(const Json& body) {
  CompletionRequest req;
  MS_API_TRY(parse_common(body, &req.gen));
  Reader r(body);
  req.gen.max_tokens = 16;  // vLLM CompletionRequest default; null also means 16
  MS_API_TRY(r.int32("max_tokens", &req.gen.max_tokens, /*clamp=*/true));
  MS_API_TRY(r.int32("logprobs", &req.gen.params.logprobs));
  MS_API_TRY(r.boolean("add_special_tokens", &req.gen.add_special_tokens));
  if (const Json* s = r.find("suffix")) {
    (void)s;
    return bad_request("suffix is not currently supported", "suffix");
  }
  MS_API_TRY(parse_prompt(body, &req.prompts));
  if (req.gen.echo && req.gen.params.logprobs) {
    return bad_request("echo with logprobs (prompt logprobs) is not supported by this server",
                       "echo");
  }
  MS_API_TRY(validate_sampling(req.gen));
  return req;
}

ApiResult<ChatCompletionRequest> parse_chat_request(const Json& body) {
  ChatCompletionRequest req;
  req.gen.add_special_tokens = false;
  MS_API_TRY(parse_common(body, &req.gen));
  Reader r(body);
  std::optional<int32_t> max_tokens, max_completion_tokens;
  MS_API_TRY(r.int32("max_tokens", &max_tokens, /*clamp=*/true));
  MS_API_TRY(r.int32("max_completion_tokens", &max_completion_tokens, /*clamp=*/true));
  req.gen.max_tokens = max_completion_tokens ? max_completion_tokens : max_tokens;
  MS_API_TRY(r.boolean("logprobs", &req.logprobs));
  std::optional<int32_t> top_logprobs;
  MS_API_TRY(r.int32("top_logprobs", &top_logprobs));
  if (top_logprobs) {
    if (*top_logprobs < 0 && *top_logprobs != -1) {
      return bad_request("`top_logprobs` must be a positive value.", "top_logprobs");
    }
    if (*top_logprobs != 0 && !req.logprobs) {
      return bad_request("when using `top_logprobs`, `logprobs` must be set to true.",
                         "top_logprobs");
    }
    req.top_logprobs = *top_logprobs;
  }
  if (req.logprobs) req.gen.params.logprobs = req.top_logprobs;
  MS_API_TRY(r.boolean("add_special_tokens", &req.gen.add_special_tokens));
  MS_API_TRY(parse_chat_fields(body, &req.messages, &req.add_generation_prompt,
                               &req.continue_final_message, &req.chat_template,
                               &req.chat_template_kwargs, &req.tools));
  if (req.messages.empty()) return bad_request("messages must not be empty", "messages");
  MS_API_TRY(validate_sampling(req.gen));
  return req;
}

ApiResult<TokenizeRequest> parse_tokenize_request(const Json& body) {
  TokenizeRequest req;
  Reader r(body);
  MS_API_TRY(r.string("model", &req.model));
  MS_API_TRY(r.boolean("return_token_strs", &req.return_token_strs));
  if (r.has("messages")) {
    req.is_chat = true;
    req.add_special_tokens = false;
    MS_API_TRY(r.boolean("add_special_tokens", &req.add_special_tokens));
    MS_API_TRY(parse_chat_fields(body, &req.messages, &req.add_generation_prompt,
                                 &req.continue_final_message, &req.chat_template,
                                 &req.chat_template_kwargs, &req.tools));
    return req;
  }
  std::optional<std::string> prompt;
  MS_API_TRY(r.string("prompt", &prompt));
  if (!prompt) return bad_request("Either `prompt` or `messages` must be provided.", "prompt");
  req.prompt = *prompt;
  MS_API_TRY(r.boolean("add_special_tokens", &req.add_special_tokens));
  return req;
}

ApiResult<DetokenizeRequest> parse_detokenize_request(const Json& body) {
  DetokenizeRequest req;
  Reader r(body);
  MS_API_TRY(r.string("model", &req.model));
  if (!r.has("tokens")) return bad_request("tokens: Field required", "tokens");
  MS_API_TRY(r.token_ids("tokens", &req.tokens));
  return req;
}

}  // namespace moeserve::server
