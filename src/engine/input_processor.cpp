#include "engine/input_processor.h"

#include "absl/strings/str_cat.h"
#include "model/config.h"
#include "tokenizer/tokenizer.h"

namespace moeserve::engine {

InputProcessorConfig InputProcessorConfig::from_model(const ModelConfig& model,
                                                      int32_t max_model_len,
                                                      const Tokenizer* tokenizer,
                                                      GenerationDefaults defaults) {
  InputProcessorConfig c;
  c.vocab_size = model.vocab_size;
  c.max_model_len = max_model_len;
  if (model.eos_token_id) c.config_eos_token_id = static_cast<int32_t>(*model.eos_token_id);
  if (tokenizer != nullptr) c.tokenizer_eos_token_id = tokenizer->eos_id();
  c.generation_defaults = std::move(defaults);
  return c;
}

StatusOr<InputProcessor> InputProcessor::create(InputProcessorConfig config) {
  if (config.vocab_size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("config.json: vocab_size (", config.vocab_size, ") must be positive"));
  }
  if (config.max_model_len <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_model_len (", config.max_model_len, ") must be positive"));
  }
  InputProcessor p(std::move(config));
  if (p.eos_token_id_ && (*p.eos_token_id_ < 0 || *p.eos_token_id_ >= p.config_.vocab_size)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the EOS token id ", *p.eos_token_id_, " is outside the model's vocabulary (size ",
        p.config_.vocab_size,
        "); fix eos_token_id in generation_config.json / config.json or the tokenizer's "
        "eos_token"));
  }
  return p;
}

InputProcessor::InputProcessor(InputProcessorConfig config) : config_(std::move(config)) {
  const std::vector<int32_t>& gen = config_.generation_defaults.eos_token_ids;
  if (!gen.empty()) {
    eos_token_id_ = gen.front();
  } else if (config_.config_eos_token_id) {
    eos_token_id_ = config_.config_eos_token_id;
  } else {
    eos_token_id_ = config_.tokenizer_eos_token_id;
  }
}

Status InputProcessor::check_prompt(const std::vector<int32_t>& ids) const {
  if (ids.empty()) return absl::InvalidArgumentError("The prompt is empty after tokenization.");
  for (int32_t id : ids) {
    if (id < 0 || id >= config_.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("Token id ", id, " is out of vocabulary"));
    }
  }
  if (static_cast<int64_t>(ids.size()) > config_.max_model_len) {
    return absl::InvalidArgumentError(absl::StrCat("Input length (", ids.size(),
                                                   ") exceeds model's maximum context length (",
                                                   config_.max_model_len, ")."));
  }
  return absl::OkStatus();
}

StatusOr<SamplingParams> InputProcessor::process(const RequestInputs& in) const {
  MS_RETURN_IF_ERROR(check_prompt(in.prompt_token_ids));
  const GenerationDefaults& defaults = config_.generation_defaults;
  MS_ASSIGN_OR_RETURN(
      int32_t max_tokens,
      get_max_tokens(config_.max_model_len, static_cast<int32_t>(in.prompt_token_ids.size()),
                     in.max_tokens, defaults));
  SamplingParams p = in.params;
  apply_sampling_defaults(in.sampling, defaults, &p);
  p.max_tokens = max_tokens;
  p.update_from_generation_config(defaults.eos_token_ids, eos_token_id_);
  MS_RETURN_IF_ERROR(p.normalize_and_validate());
  return p;
}

}  // namespace moeserve::engine
