#include "server/response_format.h"

#include <chrono>
#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"

namespace moeserve::server {

std::string random_id(std::string_view prefix) {
  thread_local std::mt19937_64 rng(
      std::random_device{}() ^
      static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
  return absl::StrCat(std::string(prefix), absl::Hex(rng(), absl::kZeroPad16),
                      absl::Hex(rng(), absl::kZeroPad16));
}

int64_t unix_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double finite_logprob(double lp) {
  return std::isfinite(lp) ? lp : -9999.0;
}

std::string token_string(const Tokenizer* tokenizer, int32_t id) {
  if (tokenizer == nullptr) return absl::StrCat("token_id:", id);
  const int32_t ids[1] = {id};
  return tokenizer->decode(ids, /*skip_special_tokens=*/false);
}

Json stop_reason_json(const engine::StopReason& reason) {
  if (const auto* id = std::get_if<int32_t>(&reason)) return *id;
  if (const auto* s = std::get_if<std::string>(&reason)) return *s;
  return nullptr;
}

Json finish_reason_json(std::optional<engine::FinishReason> reason) {
  if (!reason) return nullptr;
  return std::string(engine::finish_reason_name(*reason));
}

Json usage_json(int64_t prompt_tokens, int64_t completion_tokens,
                std::optional<int64_t> cached_tokens) {
  Json u;
  u["prompt_tokens"] = prompt_tokens;
  u["total_tokens"] = prompt_tokens + completion_tokens;
  u["completion_tokens"] = completion_tokens;
  if (cached_tokens) {
    u["prompt_tokens_details"] = Json{{"cached_tokens", *cached_tokens}};
  } else {
    u["prompt_tokens_details"] = nullptr;
  }
  return u;
}

void CompletionLogprobs::append(const Tokenizer* tokenizer, const engine::TokenLogprobs& lp,
                                int32_t num_top, int64_t* cursor) {
  const std::string tok = token_string(tokenizer, lp.token_id);
  text_offset.push_back(*cursor);
  *cursor += static_cast<int64_t>(tok.size());
  token_logprobs.push_back(finite_logprob(lp.logprob));
  tokens.push_back(tok);
  // vLLM's dict holds the top-N and the sampled token.
  Json top = Json::object();
  int32_t taken = 0;
  for (const auto& t : lp.top) {
    if (num_top >= 0 && taken >= num_top) break;
    ++taken;
    const std::string s = token_string(tokenizer, t.token_id);
    if (!top.contains(s)) top[s] = finite_logprob(t.logprob);
  }
  if (!top.contains(tok)) top[tok] = finite_logprob(lp.logprob);
  top_logprobs.push_back(std::move(top));
}

Json CompletionLogprobs::to_json() const {
  Json j;
  j["text_offset"] = text_offset;
  j["token_logprobs"] = token_logprobs;
  j["tokens"] = tokens;
  j["top_logprobs"] = top_logprobs;
  return j;
}

namespace {

Json bytes_of(const Tokenizer* tokenizer, int32_t id) {
  Json b = Json::array();
  const std::string s =
      tokenizer ? std::string(tokenizer->token_bytes(id)) : absl::StrCat("token_id:", id);
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}

}  // namespace

void append_chat_logprob(const Tokenizer* tokenizer, const engine::TokenLogprobs& lp,
                         int32_t num_top, Json* content) {
  Json e;
  e["token"] = token_string(tokenizer, lp.token_id);
  e["logprob"] = finite_logprob(lp.logprob);
  e["bytes"] = bytes_of(tokenizer, lp.token_id);
  Json top = Json::array();
  int32_t taken = 0;
  for (const auto& t : lp.top) {
    if (num_top >= 0 && taken >= num_top) break;
    ++taken;
    Json te;
    te["token"] = token_string(tokenizer, t.token_id);
    te["logprob"] = finite_logprob(t.logprob);
    te["bytes"] = bytes_of(tokenizer, t.token_id);
    top.push_back(std::move(te));
  }
  e["top_logprobs"] = std::move(top);
  content->push_back(std::move(e));
}

Json model_card(const std::string& id, const std::string& root, int32_t max_model_len,
                int64_t created) {
  Json perm;
  perm["id"] = random_id("modelperm-");
  perm["object"] = "model_permission";
  perm["created"] = created;
  perm["allow_create_engine"] = false;
  perm["allow_sampling"] = true;
  perm["allow_logprobs"] = true;
  perm["allow_search_indices"] = false;
  perm["allow_view"] = true;
  perm["allow_fine_tuning"] = false;
  perm["organization"] = "*";
  perm["group"] = nullptr;
  perm["is_blocking"] = false;
  Json card;
  card["id"] = id;
  card["object"] = "model";
  card["created"] = created;
  card["owned_by"] = "vllm";
  card["root"] = root;
  card["parent"] = nullptr;
  card["max_model_len"] = max_model_len;
  card["permission"] = Json::array({perm});
  return card;
}

}  // namespace moeserve::server
