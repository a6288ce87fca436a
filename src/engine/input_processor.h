// The one place a request's inputs are checked and its sampling parameters completed (vLLM's
// InputProcessor): the tokenised prompt (non-empty, every id inside the model's vocabulary,
// no longer than max_model_len), max_tokens (vLLM get_max_tokens), the sampling defaults of
// generation_config.json, the EOS token and the sampling-parameter validation. The OpenAI
// server, `moeserve run` and the benchmarks all build their requests through it, and
// LlmEngine::add_request re-checks every prompt with it.
//
// The EOS rule (one rule for every entry point): the primary EOS token is the first
// `eos_token_id` of generation_config.json (int or list), else config.json's `eos_token_id`,
// else the tokenizer's eos_token (tokenizer_config.json). Further ids of generation_config's
// list stop generation too (they join stop_token_ids unless ignore_eos). With
// `--generation-config vllm` the model's generation_config.json is not read, so the rule
// starts at config.json.
//
// Thread-safety: immutable after construction; every method may be called from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "core/status.h"
#include "engine/sampling_params.h"

namespace moeserve {
class Tokenizer;
struct ModelConfig;
}  // namespace moeserve

namespace moeserve::engine {

struct InputProcessorConfig {
  int64_t vocab_size = 0;     // the model's embedding rows (config.json vocab_size)
  int32_t max_model_len = 0;  // prompt + output tokens
  std::optional<int32_t> config_eos_token_id;     // config.json eos_token_id
  std::optional<int32_t> tokenizer_eos_token_id;  // tokenizer_config.json eos_token
  GenerationDefaults generation_defaults;         // generation_config.json (+ overrides)

  static InputProcessorConfig from_model(const ModelConfig& model, int32_t max_model_len,
                                         const Tokenizer* tokenizer, GenerationDefaults defaults);
};

// What a client asked for, before defaults: explicit sampling values in `params` (n, seed,
// stop, logprobs, ignore_eos, ...), the fields it may leave unset in `sampling`, and its
// max_tokens (unset: up to the context length).
struct RequestInputs {
  std::vector<int32_t> prompt_token_ids;
  SamplingParams params;
  RequestSamplingFields sampling;
  std::optional<int32_t> max_tokens;
};

class InputProcessor {
 public:
  // InvalidArgument for a vocabulary or length that cannot hold a request, or an EOS id
  // outside the vocabulary.
  static StatusOr<InputProcessor> create(InputProcessorConfig config);

  // The primary EOS token by the rule above (nullopt: the model has none).
  std::optional<int32_t> eos_token_id() const { return eos_token_id_; }
  const GenerationDefaults& generation_defaults() const { return config_.generation_defaults; }
  int32_t max_model_len() const { return config_.max_model_len; }
  int64_t vocab_size() const { return config_.vocab_size; }

  // The tokenised-prompt checks, with vLLM's messages: empty, an id outside the vocabulary,
  // longer than max_model_len.
  Status check_prompt(const std::vector<int32_t>& prompt_token_ids) const;

  // Checks the prompt and returns the request's complete sampling parameters: request >
  // generation_config > OpenAI defaults, max_tokens capped by the context and by
  // generation_config's max_new_tokens, the EOS ids, then vLLM's normalisation and
  // validation. InvalidArgument (vLLM's 400 message) on the first violated rule.
  StatusOr<SamplingParams> process(const RequestInputs& inputs) const;

 private:
  explicit InputProcessor(InputProcessorConfig config);

  InputProcessorConfig config_;
  std::optional<int32_t> eos_token_id_;
};

}  // namespace moeserve::engine
