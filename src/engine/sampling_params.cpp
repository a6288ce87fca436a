#include "engine/sampling_params.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <set>

#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace moeserve::engine {
namespace {

using absl::InvalidArgumentError;
using absl::StrCat;

std::string py_int_list(const std::vector<int32_t>& v) {
  return StrCat("[", absl::StrJoin(v, ", "), "]");
}

absl::Status read_number(const nlohmann::json& obj, const char* key, std::optional<double>* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number()) {
    return InvalidArgumentError(
        StrCat("generation config: '", key, "' must be a number, got ", it->dump()));
  }
  *out = it->get<double>();
  return absl::OkStatus();
}

absl::Status read_int(const nlohmann::json& obj, const char* key, std::optional<int32_t>* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number_integer()) {
    return InvalidArgumentError(
        StrCat("generation config: '", key, "' must be an integer, got ", it->dump()));
  }
  const int64_t v = it->get<int64_t>();
  if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max()) {
    return InvalidArgumentError(
        StrCat("generation config: '", key, "' is out of range: ", it->dump()));
  }
  *out = static_cast<int32_t>(v);
  return absl::OkStatus();
}

}  // namespace

absl::Status SamplingParams::normalize_and_validate() {
  if (seed.has_value() && *seed == -1) seed.reset();
  if (top_k == -1) top_k = 0;
  if (temperature > 0.0 && temperature < kMinTemperature) temperature = kMinTemperature;
  MS_RETURN_IF_ERROR(validate());
  if (is_greedy()) {
    top_p = 1.0;
    top_k = 0;
    min_p = 0.0;
  }
  return absl::OkStatus();
}

absl::Status SamplingParams::validate() const {
  if (n < 1) return InvalidArgumentError(StrCat("n must be at least 1, got ", n, "."));
  if (!(presence_penalty >= -2.0 && presence_penalty <= 2.0)) {
    return InvalidArgumentError(
        StrCat("presence_penalty must be in [-2, 2], got ", py_float_repr(presence_penalty), "."));
  }
  if (!(frequency_penalty >= -2.0 && frequency_penalty <= 2.0)) {
    return InvalidArgumentError(StrCat("frequency_penalty must be in [-2, 2], got ",
                                       py_float_repr(frequency_penalty), "."));
  }
  if (!(repetition_penalty > 0.0) || !std::isfinite(repetition_penalty)) {
    return InvalidArgumentError(StrCat("repetition_penalty must be greater than zero, got ",
                                       py_float_repr(repetition_penalty), "."));
  }
  if (!(temperature >= 0.0) || !std::isfinite(temperature)) {
    return InvalidArgumentError(
        StrCat("temperature must be non-negative, got ", py_float_repr(temperature), "."));
  }
  if (!(top_p > 0.0 && top_p <= 1.0)) {
    return InvalidArgumentError(StrCat("top_p must be in (0, 1], got ", py_float_repr(top_p), "."));
  }
  if (top_k < -1) {
    return InvalidArgumentError(
        StrCat("top_k must be 0 (disable), or at least 1, got ", top_k, "."));
  }
  if (!(min_p >= 0.0 && min_p <= 1.0)) {
    return InvalidArgumentError(StrCat("min_p must be in [0, 1], got ", py_float_repr(min_p), "."));
  }
  if (max_tokens.has_value() && *max_tokens < 1) {
    return InvalidArgumentError(StrCat("max_tokens must be at least 1, got ", *max_tokens, "."));
  }
  if (min_tokens < 0) {
    return InvalidArgumentError(
        StrCat("min_tokens must be greater than or equal to 0, got ", min_tokens, "."));
  }
  if (max_tokens.has_value() && min_tokens > *max_tokens) {
    return InvalidArgumentError(StrCat("min_tokens must be less than or equal to max_tokens=",
                                       *max_tokens, ", got ", min_tokens, "."));
  }
  if (logprobs.has_value() && *logprobs != -1 && *logprobs < 0) {
    return InvalidArgumentError(
        StrCat("logprobs must be non-negative or -1, got ", *logprobs, "."));
  }
  if (prompt_logprobs.has_value() && *prompt_logprobs != -1 && *prompt_logprobs < 0) {
    return InvalidArgumentError(
        StrCat("prompt_logprobs must be non-negative or -1, got ", *prompt_logprobs, "."));
  }
  for (int32_t id : stop_token_ids) {
    if (id < 0) {
      return InvalidArgumentError(
          StrCat("stop_token_ids must contain only non-negative integers, got ",
                 py_int_list(stop_token_ids), "."));
    }
  }
  for (const std::string& s : stop) {
    if (s.empty()) return InvalidArgumentError("stop cannot contain an empty string.");
  }
  return absl::OkStatus();
}

int32_t SamplingParams::output_text_buffer_length() const {
  if (stop.empty() || include_stop_str_in_output) return 0;
  size_t longest = 0;
  for (const std::string& s : stop) longest = std::max(longest, s.size());
  return static_cast<int32_t>(longest) - 1;
}

void SamplingParams::update_from_generation_config(const std::vector<int32_t>& eos_token_ids,
                                                   std::optional<int32_t> model_eos_token_id) {
  std::set<int32_t> all(all_stop_token_ids.begin(), all_stop_token_ids.end());
  all.insert(stop_token_ids.begin(), stop_token_ids.end());
  if (model_eos_token_id.has_value()) all.insert(*model_eos_token_id);
  std::set<int32_t> extra(eos_token_ids.begin(), eos_token_ids.end());
  if (model_eos_token_id.has_value()) extra.erase(*model_eos_token_id);
  if (!extra.empty()) {
    all.insert(extra.begin(), extra.end());
    if (!ignore_eos) {
      extra.insert(stop_token_ids.begin(), stop_token_ids.end());
      stop_token_ids.assign(extra.begin(), extra.end());
    }
  }
  all_stop_token_ids.assign(all.begin(), all.end());
}

absl::StatusOr<GenerationDefaults> GenerationDefaults::from_json(const nlohmann::json& config,
                                                                 const nlohmann::json& overrides) {
  nlohmann::json merged = nlohmann::json::object();
  for (const nlohmann::json* src : {&config, &overrides}) {
    if (src->is_null()) continue;
    if (!src->is_object()) {
      return InvalidArgumentError(
          StrCat("generation config must be a JSON object, got ", src->dump()));
    }
    for (auto it = src->begin(); it != src->end(); ++it) merged[it.key()] = it.value();
  }
  GenerationDefaults d;
  MS_RETURN_IF_ERROR(read_number(merged, "repetition_penalty", &d.repetition_penalty));
  MS_RETURN_IF_ERROR(read_number(merged, "temperature", &d.temperature));
  MS_RETURN_IF_ERROR(read_int(merged, "top_k", &d.top_k));
  MS_RETURN_IF_ERROR(read_number(merged, "top_p", &d.top_p));
  MS_RETURN_IF_ERROR(read_number(merged, "min_p", &d.min_p));
  MS_RETURN_IF_ERROR(read_int(merged, "max_new_tokens", &d.max_tokens));
  auto eos = merged.find("eos_token_id");
  if (eos != merged.end() && !eos->is_null()) {
    const nlohmann::json list = eos->is_array() ? *eos : nlohmann::json::array({*eos});
    for (const auto& v : list) {
      if (!v.is_number_integer()) {
        return InvalidArgumentError(StrCat(
            "generation config: 'eos_token_id' must be an integer or a list of integers, got ",
            eos->dump()));
      }
      d.eos_token_ids.push_back(v.get<int32_t>());
    }
  }
  return d;
}

absl::StatusOr<GenerationDefaults> GenerationDefaults::load(const std::string& mode,
                                                            const std::filesystem::path& model_dir,
                                                            const nlohmann::json& overrides) {
  nlohmann::json config = nlohmann::json::object();
  if (mode != "vllm") {
    const std::filesystem::path dir = mode == "auto" ? model_dir : std::filesystem::path(mode);
    const std::filesystem::path file = dir / "generation_config.json";
    std::error_code ec;
    if (std::filesystem::exists(file, ec)) {
      std::ifstream in(file);
      config = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
      if (config.is_discarded()) {
        return InvalidArgumentError(StrCat(file.string(), ": not valid JSON"));
      }
    }
  }
  return from_json(config, overrides);
}

void apply_sampling_defaults(const RequestSamplingFields& request,
                             const GenerationDefaults& defaults, SamplingParams* params) {
  params->repetition_penalty =
      request.repetition_penalty.value_or(defaults.repetition_penalty.value_or(1.0));
  params->temperature = request.temperature.value_or(defaults.temperature.value_or(1.0));
  params->top_k = request.top_k.value_or(defaults.top_k.value_or(0));
  params->top_p = request.top_p.value_or(defaults.top_p.value_or(1.0));
  params->min_p = request.min_p.value_or(defaults.min_p.value_or(0.0));
  params->presence_penalty = request.presence_penalty.value_or(0.0);
  params->frequency_penalty = request.frequency_penalty.value_or(0.0);
}

absl::StatusOr<int32_t> get_max_tokens(int32_t max_model_len, int32_t input_length,
                                       std::optional<int32_t> request_max_tokens,
                                       const GenerationDefaults& defaults) {
  if (input_length > max_model_len) {
    return InvalidArgumentError(StrCat("Input length (", input_length,
                                       ") exceeds model's maximum context length (", max_model_len,
                                       ")."));
  }
  int32_t v = max_model_len - input_length;
  if (request_max_tokens.has_value()) v = std::min(v, *request_max_tokens);
  if (defaults.max_tokens.has_value()) v = std::min(v, *defaults.max_tokens);
  return v;
}

}  // namespace moeserve::engine
