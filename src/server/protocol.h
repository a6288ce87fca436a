// OpenAI request bodies as vLLM accepts them: JSON → typed requests, with vLLM's validation
// messages. Every failure is an ApiError (400 BadRequestError naming the field); unknown
// fields are ignored. Nothing here needs the model: prompt tokenization, chat templating and
// max_tokens resolution happen in the handlers.
//
// Field types follow vLLM's pydantic models, strictly: an integer field takes a JSON integer
// (or a float with no fraction) within range, a number field any finite JSON number, a bool
// field only true/false; null means "unset" where vLLM's field is Optional.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "engine/sampling_params.h"
#include "net/json_intake.h"
#include "nlohmann/json.hpp"
#include "server/api_error.h"

namespace moeserve::server {

using Json = nlohmann::ordered_json;

template <typename T>
using ApiResult = std::variant<T, ApiError>;

struct StreamOptions {
  bool include_usage = true;  // vLLM: true when the object is given
  bool continuous_usage_stats = false;
};

// A completion prompt: text, or token ids.
struct PromptInput {
  std::optional<std::string> text;  // set for text prompts
  std::vector<int32_t> token_ids;   // set for token prompts
};

// The fields completions and chat share.
struct GenerationRequest {
  std::optional<std::string> model;
  // n, seed, stop, stop_token_ids, ignore_eos, min_tokens, logprobs, skip_special_tokens,
  // spaces_between_special_tokens, include_stop_str_in_output; max_tokens left unset.
  engine::SamplingParams params;
  engine::RequestSamplingFields sampling;  // fields that fall back to generation_config
  std::optional<int32_t> max_tokens;       // request value; null/absent = unset
  bool stream = false;
  std::optional<StreamOptions> stream_options;
  bool echo = false;
  bool add_special_tokens = true;
  std::string cache_salt;
  std::optional<int32_t> truncate_prompt_tokens;  // -1: max_model_len
};

struct CompletionRequest {
  GenerationRequest gen;
  std::vector<PromptInput> prompts;  // at least one
};

struct ChatCompletionRequest {
  GenerationRequest gen;
  Json messages;  // array of objects; content parts flattened to strings
  bool add_generation_prompt = true;
  bool continue_final_message = false;
  std::optional<std::string> chat_template;
  Json chat_template_kwargs = Json::object();
  Json tools;  // null when absent
  bool logprobs = false;
  int32_t top_logprobs = 0;
};

// POST /tokenize: either a prompt or messages.
struct TokenizeRequest {
  std::optional<std::string> model;
  bool is_chat = false;
  std::string prompt;
  Json messages;
  bool add_special_tokens = true;  // false by default for messages
  bool add_generation_prompt = true;
  bool continue_final_message = false;
  std::optional<std::string> chat_template;
  Json chat_template_kwargs = Json::object();
  Json tools;
  bool return_token_strs = false;
};

struct DetokenizeRequest {
  std::optional<std::string> model;
  std::vector<int32_t> tokens;
};

// Parses the body (bytes) as a JSON object through the bounded intake (net/json_intake.h):
// 413 over the size limit, 400 for a body nested too deeply, with too many values, not JSON,
// or not an object.
ApiResult<Json> parse_json_body(std::string_view body, const net::JsonLimits& limits = {});

ApiResult<CompletionRequest> parse_completion_request(const Json& body);
ApiResult<ChatCompletionRequest> parse_chat_request(const Json& body);
ApiResult<TokenizeRequest> parse_tokenize_request(const Json& body);
ApiResult<DetokenizeRequest> parse_detokenize_request(const Json& body);

// The largest `n` a request may ask for: VLLM_MAX_N_SEQUENCES from the environment (read once),
// else vLLM's default 16384. Larger n is refused with vLLM's message before anything is
// allocated per choice; the service also checks prompts x n against the engine's queue.
int32_t max_n_sequences();
// Stop strings: at most this many per request, each at most kMaxStopStringBytes bytes (every
// generated token is checked against each of them, and a stream holds back the longest - 1).
inline constexpr size_t kMaxStopStrings = 256;
inline constexpr size_t kMaxStopStringBytes = 4096;

// vLLM's logprobs bound (its input processor): `requested` (-1 = the vocabulary) against
// --max-logprobs (`max_logprobs`, -1 = the vocabulary): 400 "Requested sample logprobs of N,
// which is greater than max allowed: M" (param "logprobs"). 0 and unset pass.
std::optional<ApiError> check_logprobs(std::optional<int32_t> requested, int32_t max_logprobs,
                                       int64_t vocab_size);

// Chat `messages`: an array of objects with a string `role`; `content` a string, null, or a
// list of {"type":"text","text":…} parts (joined with "\n", as vLLM's "string" content
// format does). Other keys pass through to the template.
ApiResult<Json> normalize_messages(const Json& messages);

}  // namespace moeserve::server
