// `moeserve run` and `moeserve bench model` drive an engine::LlmEngine exactly as the server
// does: the request's sampling parameters come from the engine's InputProcessor, the tokens
// from the engine's scheduler, model runner and sampler. Nothing here samples or caches.
//
// Thread-safety: make_offline_engine and generate_one may be called from any thread;
// on_output callbacks run on the engine-loop thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/llm_engine.h"

namespace moeserve {

struct OfflineEngineOptions {
  // Longest sequence (prompt + output) the engine must hold; capped at the model's
  // max_position_embeddings. The KV cache holds exactly one such sequence.
  int64_t max_model_len = 0;
  // Tokens per step: at least the prompt, so a prompt is prefilled in one step.
  int32_t max_num_batched_tokens = 2048;
  bool enable_prefix_caching = false;
  engine::GenerationDefaults generation_defaults;
};

StatusOr<std::unique_ptr<engine::LlmEngine>> make_offline_engine(
    std::unique_ptr<DeepseekModel> model, std::shared_ptr<const Tokenizer> tokenizer,
    const OfflineEngineOptions& options);

struct OfflineResult {
  std::vector<int32_t> token_ids;
  std::string text;                             // detokenised (empty without a tokenizer)
  std::vector<engine::TokenLogprobs> logprobs;  // one per token when asked for
  engine::FinishReason finish_reason = engine::FinishReason::kStop;  // kStop or kLength
  int32_t num_prompt_tokens = 0;
  engine::RequestPhaseTimes times;  // prefill: scheduled -> first token; decode: the rest
};

// Builds the request through engine.input_processor(), submits it and waits for it to
// finish. on_output (may be empty) sees every delta. InvalidArgument for a request the
// processor rejects; Internal when the engine fails it.
StatusOr<OfflineResult> generate_one(
    engine::LlmEngine& engine, const std::string& request_id, const engine::RequestInputs& inputs,
    const std::function<void(const engine::EngineOutput&)>& on_output = {});

}  // namespace moeserve
