// JSON pieces of OpenAI responses as vLLM shapes them: ids, usage, stop_reason, logprobs in
// the completion form {text_offset, token_logprobs, tokens, top_logprobs} and the chat form
// {content:[{token, logprob, bytes, top_logprobs}]}, and the /v1/models card.
//
// Token strings come from the tokenizer (decode of the single id, special tokens kept);
// without a tokenizer a token is shown as "token_id:<id>" (vLLM's return_tokens_as_token_ids
// form). Logprobs of -inf (or NaN) are written as -9999.0.
//
// Thread-safety: pure functions; the Tokenizer is only read.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/llm_engine.h"
#include "model/config.h"  // before llm_engine.h, which uses ModelConfig
#include "server/protocol.h"
#include "tokenizer/tokenizer.h"

namespace moeserve::server {

// "cmpl-" / "chatcmpl-" + 32 random hex digits.
std::string random_id(std::string_view prefix);
int64_t unix_seconds();

double finite_logprob(double lp);
std::string token_string(const Tokenizer* tokenizer, int32_t id);

// stop_reason: the matched stop string or token id; null for EOS / length.
Json stop_reason_json(const engine::StopReason& reason);
// finish_reason: vLLM's string ("stop", "length", ...); null while unfinished.
Json finish_reason_json(std::optional<engine::FinishReason> reason);

Json usage_json(int64_t prompt_tokens, int64_t completion_tokens,
                std::optional<int64_t> cached_tokens);

// Completion logprobs of some tokens; `text_offset` is the character offset of the first
// one and advances by each token's text length.
struct CompletionLogprobs {
  Json text_offset = Json::array();
  Json token_logprobs = Json::array();
  Json tokens = Json::array();
  Json top_logprobs = Json::array();

  void append(const Tokenizer* tokenizer, const engine::TokenLogprobs& lp, int32_t num_top,
              int64_t* text_offset_cursor);
  Json to_json() const;
};

// Chat logprob entries {token, logprob, bytes, top_logprobs} appended to `content`.
void append_chat_logprob(const Tokenizer* tokenizer, const engine::TokenLogprobs& lp,
                         int32_t num_top, Json* content);

// One /v1/models card.
Json model_card(const std::string& id, const std::string& root, int32_t max_model_len,
                int64_t created);

}  // namespace moeserve::server
