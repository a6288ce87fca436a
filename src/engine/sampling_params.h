// Sampling parameters of one request, with vLLM's normalisation and validation
// (vllm/sampling_params.py __post_init__/_verify_args) and the generation_config.json
// defaults (vllm/config/model.py get_diff_sampling_param).
//
// Resolution order for the six defaultable fields (repetition_penalty, temperature,
// top_k, top_p, min_p, max_tokens): request > generation_config (+ overrides) > OpenAI
// defaults {rep 1.0, temp 1.0, top_p 1.0, top_k 0, min_p 0}; presence and frequency
// penalties default to 0 and are never read from generation_config.
//
// Thread-safety: plain values.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/py_float_repr.h"
#include "core/status.h"
#include "nlohmann/json_fwd.hpp"

namespace moeserve::engine {

// Below this temperature sampling is greedy (vLLM _SAMPLING_EPS).
inline constexpr double kSamplingEps = 1e-5;
// Temperatures in (0, kMinTemperature) are raised to it (vLLM _MAX_TEMP).
inline constexpr double kMinTemperature = 1e-2;

struct SamplingParams {
  int32_t n = 1;
  double presence_penalty = 0.0;
  double frequency_penalty = 0.0;
  double repetition_penalty = 1.0;
  double temperature = 1.0;
  double top_p = 1.0;
  int32_t top_k = 0;  // 0 (or -1 before normalize()) disables
  double min_p = 0.0;
  std::optional<int64_t> seed;  // -1 is normalised to nullopt
  std::vector<std::string> stop;
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false;
  std::optional<int32_t> max_tokens = 16;
  int32_t min_tokens = 0;
  std::optional<int32_t> logprobs;         // number of top logprobs; -1 = whole vocabulary
  std::optional<int32_t> prompt_logprobs;  // -1 = whole vocabulary
  bool skip_special_tokens = true;
  bool spaces_between_special_tokens = true;
  bool include_stop_str_in_output = false;
  // Tokens masked while fewer than min_tokens were generated: the primary EOS (unless
  // ignore_eos), stop_token_ids and generation_config's extra eos ids.
  std::vector<int32_t> all_stop_token_ids;

  // vLLM __post_init__: seed -1 -> none, top_k -1 -> 0, temperature in (0, 0.01) -> 0.01,
  // greedy (temperature < 1e-5) forces top_p 1, top_k 0, min_p 0; then validate().
  // Returns InvalidArgument with vLLM's message on the first violated rule.
  absl::Status normalize_and_validate();
  absl::Status validate() const;

  bool is_greedy() const { return temperature < kSamplingEps; }

  // Characters a stream must hold back so that no partial stop string is released
  // (vLLM output_text_buffer_length): max(len(stop)) - 1, 0 if stop strings are kept.
  int32_t output_text_buffer_length() const;

  // vLLM update_from_generation_config: the primary EOS joins all_stop_token_ids; the
  // other `eos_token_ids` join all_stop_token_ids and, unless ignore_eos, stop_token_ids.
  void update_from_generation_config(const std::vector<int32_t>& eos_token_ids,
                                     std::optional<int32_t> model_eos_token_id);
};

// The defaults a model's generation_config.json contributes.
struct GenerationDefaults {
  std::optional<double> repetition_penalty;
  std::optional<double> temperature;
  std::optional<int32_t> top_k;
  std::optional<double> top_p;
  std::optional<double> min_p;
  std::optional<int32_t> max_tokens;   // HF max_new_tokens
  std::vector<int32_t> eos_token_ids;  // generation_config eos_token_id (int or list)

  // `config` is the generation_config.json object (or empty for `--generation-config
  // vllm`); `overrides` (`--override-generation-config`, may be null/empty) is merged over
  // it key by key. Only the six fields above (non-null) and eos_token_id are read.
  static absl::StatusOr<GenerationDefaults> from_json(const nlohmann::json& config,
                                                      const nlohmann::json& overrides);

  // `--generation-config` semantics: "vllm" ignores the model's file, "auto" reads
  // `model_dir`/generation_config.json, anything else is a folder holding that file. A
  // missing file yields no defaults.
  static absl::StatusOr<GenerationDefaults> load(const std::string& mode,
                                                 const std::filesystem::path& model_dir,
                                                 const nlohmann::json& overrides);
};

// The sampling fields an OpenAI request may leave unset (null).
struct RequestSamplingFields {
  std::optional<double> temperature;
  std::optional<double> top_p;
  std::optional<int32_t> top_k;
  std::optional<double> min_p;
  std::optional<double> repetition_penalty;
  std::optional<double> presence_penalty;
  std::optional<double> frequency_penalty;
};

// Fills the seven fields of `params` from request > generation_config > OpenAI defaults.
void apply_sampling_defaults(const RequestSamplingFields& request,
                             const GenerationDefaults& defaults, SamplingParams* params);

// vLLM get_max_tokens: min(max_model_len - input_length, request max_tokens,
// generation_config max_new_tokens), ignoring unset values. Fails with vLLM's 400 message
// when the prompt alone does not fit.
absl::StatusOr<int32_t> get_max_tokens(int32_t max_model_len, int32_t input_length,
                                       std::optional<int32_t> request_max_tokens,
                                       const GenerationDefaults& defaults);

// Python's repr() of a float, for messages that quote vLLM's (it lives in core/).
using ::moeserve::py_float_repr;

}  // namespace moeserve::engine
