// ModelConfig: every config.json field of DeepseekV2ForCausalLM / DeepseekV3ForCausalLM that
// changes the math, parsed and checked once at load. Plain data; immutable after parsing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace moeserve {

enum class Architecture { kDeepseekV2, kDeepseekV3 };
enum class TopkMethod { kGreedy, kGroupLimitedGreedy, kNoauxTc };
enum class ScoringFunc { kSoftmax, kSigmoid };

struct RopeScaling {
  bool yarn = false;            // rope_scaling.type (or rope_type) == "yarn"
  double factor = 1.0;
  int64_t original_max_position_embeddings = 4096;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 1.0;
  double mscale_all_dim = 0.0;

  bool operator==(const RopeScaling&) const = default;
};

struct ModelConfig {
  Architecture arch = Architecture::kDeepseekV3;
  std::string model_type;       // "deepseek_v2" | "deepseek_v3"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;       // dense MLP
  int64_t moe_intermediate_size = 0;   // per routed/shared expert
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  std::optional<int64_t> q_lora_rank;  // null => q_proj
  int64_t kv_lora_rank = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t qk_rope_head_dim = 0;
  int64_t v_head_dim = 0;
  int64_t n_routed_experts = 0;        // 0 => every layer dense
  int64_t n_shared_experts = 0;
  int64_t num_experts_per_tok = 0;
  int64_t n_group = 1;
  int64_t topk_group = 1;
  TopkMethod topk_method = TopkMethod::kGreedy;
  ScoringFunc scoring_func = ScoringFunc::kSoftmax;
  bool norm_topk_prob = false;
  double routed_scaling_factor = 1.0;
  int64_t first_k_dense_replace = 0;
  int64_t moe_layer_freq = 1;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  int64_t max_position_embeddings = 4096;
  bool tie_word_embeddings = false;
  std::optional<int64_t> bos_token_id;
  std::optional<int64_t> eos_token_id;
  std::string torch_dtype = "bfloat16";
  // quantization_config.quant_method == "fp8" with weight_block_size [128,128]
  bool fp8_block_quant = false;
  int64_t fp8_block_n = 128;
  int64_t fp8_block_k = 128;

  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  bool is_moe_layer(int64_t layer) const {
    return n_routed_experts > 0 && layer >= first_k_dense_replace &&
           layer % moe_layer_freq == 0;
  }
  bool operator==(const ModelConfig&) const = default;

  // The softmax scale of MLA: qk_head_dim^-0.5, times yarn mscale(factor, mscale_all_dim)^2.
  double softmax_scale() const;
};

// Parses config.json text; `source` names the file in error messages.
StatusOr<ModelConfig> parse_model_config(std::string_view json_text, std::string_view source);
StatusOr<ModelConfig> load_model_config(const std::string& model_dir);
// Serialises a config spelled exactly as Hugging Face's DeepseekV2/V3 config.json.
std::string model_config_to_json(const ModelConfig& c);

// yarn_get_mscale(scale, m) = scale <= 1 ? 1 : 0.1*m*ln(scale) + 1
double yarn_get_mscale(double scale, double mscale);

}  // namespace moeserve
