#include "model/config.h"

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

#include "nlohmann/json.hpp"

namespace moeserve {
namespace {

using Json = nlohmann::json;

// This Abseil's string_view is its own type: convert explicitly.
absl::string_view av(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

// Defaults of the Hugging Face config classes when a field is absent: DeepseekV3Config in
// transformers, and DeepSeek's own configuration_deepseek.py for V2 (the class named by
// V2 checkpoints' auto_map; its "gready" default topk_method is read as greedy).
ModelConfig defaults_for(Architecture arch) {
  ModelConfig c;
  c.arch = arch;
  if (arch == Architecture::kDeepseekV3) {
    c.model_type = "deepseek_v3";
    c.vocab_size = 129280;
    c.hidden_size = 7168;
    c.intermediate_size = 18432;
    c.moe_intermediate_size = 2048;
    c.num_hidden_layers = 61;
    c.num_attention_heads = 128;
    c.q_lora_rank = 1536;
    c.n_routed_experts = 256;
    c.n_shared_experts = 1;
    c.num_experts_per_tok = 8;
    c.n_group = 8;
    c.topk_group = 4;
    c.topk_method = TopkMethod::kNoauxTc;
    c.scoring_func = ScoringFunc::kSigmoid;
    c.norm_topk_prob = true;
    c.routed_scaling_factor = 2.5;
    c.first_k_dense_replace = 3;
    c.max_position_embeddings = 4096;
    c.bos_token_id = 0;
    c.eos_token_id = 1;
  } else {
    c.model_type = "deepseek_v2";
    c.vocab_size = 102400;
    c.hidden_size = 4096;
    c.intermediate_size = 11008;
    c.moe_intermediate_size = 1407;
    c.num_hidden_layers = 30;
    c.num_attention_heads = 32;
    c.q_lora_rank = 1536;
    c.n_routed_experts = 0;
    c.n_shared_experts = 0;
    c.num_experts_per_tok = 0;
    c.n_group = 1;
    c.topk_group = 1;
    c.topk_method = TopkMethod::kGreedy;
    c.scoring_func = ScoringFunc::kSoftmax;
    c.norm_topk_prob = false;
    c.routed_scaling_factor = 1.0;
    c.first_k_dense_replace = 0;
    c.max_position_embeddings = 2048;
    c.bos_token_id = 100000;
    c.eos_token_id = 100001;
  }
  c.kv_lora_rank = 512;
  c.qk_nope_head_dim = 128;
  c.qk_rope_head_dim = 64;
  c.v_head_dim = 128;
  c.moe_layer_freq = 1;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 10000.0;
  c.tie_word_embeddings = false;
  c.torch_dtype = "bfloat16";
  return c;
}

// Reads typed fields of one JSON object; every error names the file and the field path.
class FieldReader {
 public:
  FieldReader(const Json& obj, std::string_view source, std::string prefix)
      : obj_(obj), source_(source), prefix_(std::move(prefix)) {}

  Status error(std::string_view field, std::string_view msg) const {
    return absl::InvalidArgumentError(
        absl::StrCat(av(source_), ": ", prefix_, av(field), " ", av(msg)));
  }
  const Json* find(std::string_view field) const {
    const auto it = obj_.find(field);
    return it == obj_.end() ? nullptr : &*it;
  }
  bool present(std::string_view field) const {
    const Json* v = find(field);
    return v != nullptr && !v->is_null();
  }

  // Absent keeps *out; null is an error unless `nullable` (then *out = `if_null`).
  Status int_field(std::string_view field, int64_t* out, bool nullable = false,
                   int64_t if_null = 0) const {
    const Json* v = find(field);
    if (v == nullptr) return absl::OkStatus();
    if (v->is_null()) {
      if (!nullable) return error(field, "must be an integer, got null");
      *out = if_null;
      return absl::OkStatus();
    }
    return to_int(field, *v, out);
  }
  Status to_int(std::string_view field, const Json& v, int64_t* out) const {
    if (v.is_number_unsigned()) {
      const uint64_t u = v.get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return error(field, absl::StrCat("is too large (", u, ")"));
      }
      *out = static_cast<int64_t>(u);
      return absl::OkStatus();
    }
    if (v.is_number_integer()) {
      *out = v.get<int64_t>();
      return absl::OkStatus();
    }
    return error(field, absl::StrCat("must be an integer, got ", v.dump()));
  }
  Status opt_int_field(std::string_view field, std::optional<int64_t>* out) const {
    const Json* v = find(field);
    if (v == nullptr) return absl::OkStatus();
    if (v->is_null()) {
      out->reset();
      return absl::OkStatus();
    }
    int64_t x = 0;
    MS_RETURN_IF_ERROR(to_int(field, *v, &x));
    *out = x;
    return absl::OkStatus();
  }
  Status double_field(std::string_view field, double* out) const {
    const Json* v = find(field);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_number()) return error(field, absl::StrCat("must be a number, got ", v->dump()));
    *out = v->get<double>();
    if (!std::isfinite(*out)) return error(field, "must be finite");
    return absl::OkStatus();
  }
  Status bool_field(std::string_view field, bool* out) const {
    const Json* v = find(field);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_boolean())
      return error(field, absl::StrCat("must be true or false, got ", v->dump()));
    *out = v->get<bool>();
    return absl::OkStatus();
  }
  // Absent or null keeps *out.
  Status string_field(std::string_view field, std::string* out) const {
    const Json* v = find(field);
    if (v == nullptr || v->is_null()) return absl::OkStatus();
    if (!v->is_string()) return error(field, absl::StrCat("must be a string, got ", v->dump()));
    *out = v->get<std::string>();
    return absl::OkStatus();
  }

 private:
  const Json& obj_;
  std::string_view source_;
  std::string prefix_;
};

StatusOr<Architecture> detect_architecture(const FieldReader& r, const Json& root) {
  std::string model_type;
  MS_RETURN_IF_ERROR(r.string_field("model_type", &model_type));
  std::optional<Architecture> from_type;
  if (model_type == "deepseek_v2") from_type = Architecture::kDeepseekV2;
  if (model_type == "deepseek_v3") from_type = Architecture::kDeepseekV3;

  const auto it = root.find("architectures");
  if (it != root.end() && !it->is_null()) {
    if (!it->is_array() || it->empty() || !(*it)[0].is_string()) {
      return r.error("architectures", "must be a non-empty list of class names");
    }
    const std::string name = (*it)[0].get<std::string>();
    Architecture arch;
    if (name == "DeepseekV2ForCausalLM") {
      arch = Architecture::kDeepseekV2;
    } else if (name == "DeepseekV3ForCausalLM") {
      arch = Architecture::kDeepseekV3;
    } else {
      return r.error("architectures",
                     absl::StrCat("names unsupported architecture ", name,
                                  " (supported: DeepseekV2ForCausalLM, DeepseekV3ForCausalLM)"));
    }
    if (from_type && *from_type != arch) {
      return r.error("model_type",
                     absl::StrCat("'", model_type, "' contradicts architectures[0] ", name));
    }
    return arch;
  }
  if (!from_type) {
    return r.error("model_type",
                   absl::StrCat("names unsupported architecture '", model_type,
                                "' (supported: deepseek_v2, deepseek_v3; or set architectures)"));
  }
  return *from_type;
}

Status parse_rope_scaling(const Json& root, std::string_view source, RopeScaling* out) {
  const auto it = root.find("rope_scaling");
  if (it == root.end() || it->is_null()) return absl::OkStatus();
  FieldReader top(root, source, "");
  if (!it->is_object()) return top.error("rope_scaling", "must be null or an object");
  FieldReader r(*it, source, "rope_scaling.");
  std::string type;
  MS_RETURN_IF_ERROR(r.string_field("rope_type", &type));
  MS_RETURN_IF_ERROR(r.string_field("type", &type));  // "type" wins when both are present
  if (type == "default") return absl::OkStatus();
  if (type != "yarn") {
    return r.error(
        "type",
        absl::StrCat("'", type, "' is not supported; DeepSeek models use \"yarn\" or null"));
  }
  RopeScaling rs;
  rs.yarn = true;
  if (!r.present("factor")) return r.error("factor", "is required for yarn");
  MS_RETURN_IF_ERROR(r.double_field("factor", &rs.factor));
  MS_RETURN_IF_ERROR(
      r.int_field("original_max_position_embeddings", &rs.original_max_position_embeddings));
  MS_RETURN_IF_ERROR(r.double_field("beta_fast", &rs.beta_fast));
  MS_RETURN_IF_ERROR(r.double_field("beta_slow", &rs.beta_slow));
  MS_RETURN_IF_ERROR(r.double_field("mscale", &rs.mscale));
  MS_RETURN_IF_ERROR(r.double_field("mscale_all_dim", &rs.mscale_all_dim));
  if (rs.factor <= 0) return r.error("factor", absl::StrCat("must be > 0, got ", rs.factor));
  if (rs.original_max_position_embeddings <= 0) {
    return r.error("original_max_position_embeddings", "must be > 0");
  }
  *out = rs;
  return absl::OkStatus();
}

Status parse_quantization(const Json& root, std::string_view source, ModelConfig* c) {
  const auto it = root.find("quantization_config");
  if (it == root.end() || it->is_null()) return absl::OkStatus();
  FieldReader top(root, source, "");
  if (!it->is_object()) return top.error("quantization_config", "must be null or an object");
  FieldReader r(*it, source, "quantization_config.");
  std::string method;
  MS_RETURN_IF_ERROR(r.string_field("quant_method", &method));
  if (method != "fp8") {
    return r.error(
        "quant_method",
        absl::StrCat("'", method, "' is not supported (only \"fp8\" block quantization)"));
  }
  std::string fmt = "e4m3";
  MS_RETURN_IF_ERROR(r.string_field("fmt", &fmt));
  if (fmt != "e4m3") return r.error("fmt", absl::StrCat("'", fmt, "' is not supported (e4m3)"));
  std::string scheme = "dynamic";
  MS_RETURN_IF_ERROR(r.string_field("activation_scheme", &scheme));
  if (scheme != "dynamic") {
    return r.error("activation_scheme",
                   absl::StrCat("'", scheme, "' is not supported (only \"dynamic\")"));
  }
  const Json* wbs = r.find("weight_block_size");
  if (wbs == nullptr || wbs->is_null()) {
    return r.error("weight_block_size",
                   "is required: per-tensor fp8 is not supported, only [128, 128]-style blocks");
  }
  if (!wbs->is_array() || wbs->size() != 2) {
    return r.error("weight_block_size", absl::StrCat("must be [n, k], got ", wbs->dump()));
  }
  MS_RETURN_IF_ERROR(r.to_int("weight_block_size[0]", (*wbs)[0], &c->fp8_block_n));
  MS_RETURN_IF_ERROR(r.to_int("weight_block_size[1]", (*wbs)[1], &c->fp8_block_k));
  if (c->fp8_block_n <= 0 || c->fp8_block_k <= 0) {
    return r.error("weight_block_size", absl::StrCat("must be positive, got ", wbs->dump()));
  }
  c->fp8_block_quant = true;
  return absl::OkStatus();
}

Status validate(const ModelConfig& c, std::string_view source) {
  auto err = [&](std::string_view msg) {
    return absl::InvalidArgumentError(absl::StrCat(av(source), ": ", av(msg)));
  };
  const std::pair<const char*, int64_t> positive[] = {
      {"vocab_size", c.vocab_size},
      {"hidden_size", c.hidden_size},
      {"intermediate_size", c.intermediate_size},
      {"num_hidden_layers", c.num_hidden_layers},
      {"num_attention_heads", c.num_attention_heads},
      {"kv_lora_rank", c.kv_lora_rank},
      {"qk_nope_head_dim", c.qk_nope_head_dim},
      {"qk_rope_head_dim", c.qk_rope_head_dim},
      {"v_head_dim", c.v_head_dim},
      {"max_position_embeddings", c.max_position_embeddings},
      {"moe_layer_freq", c.moe_layer_freq},
      {"n_group", c.n_group},
      {"topk_group", c.topk_group},
  };
  for (const auto& [name, v] : positive) {
    if (v <= 0) return err(absl::StrCat(name, " must be >= 1, got ", v));
  }
  if (c.q_lora_rank && *c.q_lora_rank <= 0) {
    return err(absl::StrCat("q_lora_rank must be >= 1 or null (no query compression), got ",
                            *c.q_lora_rank));
  }
  if (c.qk_rope_head_dim % 2 != 0) {
    return err(absl::StrCat("qk_rope_head_dim must be even (RoPE rotates pairs), got ",
                            c.qk_rope_head_dim));
  }
  if (c.first_k_dense_replace < 0 || c.first_k_dense_replace > c.num_hidden_layers) {
    return err(absl::StrCat("first_k_dense_replace must be in [0, num_hidden_layers=",
                            c.num_hidden_layers, "], got ", c.first_k_dense_replace));
  }
  if (c.n_routed_experts < 0) {
    return err(
        absl::StrCat("n_routed_experts must be >= 0 (null for dense), got ", c.n_routed_experts));
  }
  if (c.n_shared_experts < 0) {
    return err(absl::StrCat("n_shared_experts must be >= 0, got ", c.n_shared_experts));
  }
  if (c.n_routed_experts > 0) {
    if (c.moe_intermediate_size <= 0) {
      return err(absl::StrCat("moe_intermediate_size must be >= 1 for a MoE model, got ",
                              c.moe_intermediate_size));
    }
    if (c.num_experts_per_tok < 1 || c.num_experts_per_tok > c.n_routed_experts) {
      return err(absl::StrCat("num_experts_per_tok must be in [1, n_routed_experts=",
                              c.n_routed_experts, "], got ", c.num_experts_per_tok));
    }
    if (c.n_routed_experts % c.n_group != 0) {
      return err(absl::StrCat("n_routed_experts (", c.n_routed_experts,
                              ") must be divisible by n_group (", c.n_group, ")"));
    }
    if (c.topk_group > c.n_group) {
      return err(
          absl::StrCat("topk_group (", c.topk_group, ") must be <= n_group (", c.n_group, ")"));
    }
    if (c.topk_method != TopkMethod::kGreedy) {
      const int64_t reachable = c.topk_group * (c.n_routed_experts / c.n_group);
      if (c.num_experts_per_tok > reachable) {
        return err(absl::StrCat("num_experts_per_tok (", c.num_experts_per_tok,
                                ") must be <= topk_group * n_routed_experts / n_group (", reachable,
                                "): the selected groups hold too few experts"));
      }
    }
  } else if (c.num_experts_per_tok < 0) {
    return err("num_experts_per_tok must be >= 0");
  }
  if (!(c.rms_norm_eps > 0))
    return err(absl::StrCat("rms_norm_eps must be > 0, got ", c.rms_norm_eps));
  if (!(c.rope_theta > 0)) return err(absl::StrCat("rope_theta must be > 0, got ", c.rope_theta));
  if (!(c.routed_scaling_factor > 0)) {
    return err(absl::StrCat("routed_scaling_factor must be > 0, got ", c.routed_scaling_factor));
  }
  for (const auto& [name, id] :
       {std::pair{"bos_token_id", c.bos_token_id}, std::pair{"eos_token_id", c.eos_token_id}}) {
    if (id && (*id < 0 || *id >= c.vocab_size)) {
      return err(absl::StrCat(name, " (", *id, ") must be in [0, vocab_size=", c.vocab_size, ")"));
    }
  }
  if (c.torch_dtype != "bfloat16" && c.torch_dtype != "float16" && c.torch_dtype != "float32") {
    return err(absl::StrCat("torch_dtype '", c.torch_dtype,
                            "' is not supported (bfloat16, float16 or float32)"));
  }
  return absl::OkStatus();
}

}  // namespace

double yarn_get_mscale(double scale, double mscale) {
  return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

double ModelConfig::softmax_scale() const {
  double s = 1.0 / std::sqrt(static_cast<double>(qk_head_dim()));
  if (rope_scaling.yarn && rope_scaling.mscale_all_dim != 0.0) {
    const double m = yarn_get_mscale(rope_scaling.factor, rope_scaling.mscale_all_dim);
    s *= m * m;
  }
  return s;
}

StatusOr<ModelConfig> parse_model_config(std::string_view json_text, std::string_view source) {
  Json root;
  try {
    root = Json::parse(json_text.begin(), json_text.end());
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(av(source), ": not valid JSON: ", e.what()));
  }
  if (!root.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(av(source), ": must be a JSON object"));
  }
  FieldReader r(root, source, "");
  MS_ASSIGN_OR_RETURN(const Architecture arch, detect_architecture(r, root));
  ModelConfig c = defaults_for(arch);
  MS_RETURN_IF_ERROR(r.string_field("model_type", &c.model_type));
  MS_RETURN_IF_ERROR(r.int_field("vocab_size", &c.vocab_size));
  MS_RETURN_IF_ERROR(r.int_field("hidden_size", &c.hidden_size));
  MS_RETURN_IF_ERROR(r.int_field("intermediate_size", &c.intermediate_size));
  MS_RETURN_IF_ERROR(r.int_field("moe_intermediate_size", &c.moe_intermediate_size));
  MS_RETURN_IF_ERROR(r.int_field("num_hidden_layers", &c.num_hidden_layers));
  MS_RETURN_IF_ERROR(r.int_field("num_attention_heads", &c.num_attention_heads));
  MS_RETURN_IF_ERROR(r.opt_int_field("q_lora_rank", &c.q_lora_rank));
  MS_RETURN_IF_ERROR(r.int_field("kv_lora_rank", &c.kv_lora_rank));
  MS_RETURN_IF_ERROR(r.int_field("qk_nope_head_dim", &c.qk_nope_head_dim));
  MS_RETURN_IF_ERROR(r.int_field("qk_rope_head_dim", &c.qk_rope_head_dim));
  MS_RETURN_IF_ERROR(r.int_field("v_head_dim", &c.v_head_dim));
  MS_RETURN_IF_ERROR(r.int_field("n_routed_experts", &c.n_routed_experts, true, 0));
  MS_RETURN_IF_ERROR(r.int_field("n_shared_experts", &c.n_shared_experts, true, 0));
  MS_RETURN_IF_ERROR(r.int_field("num_experts_per_tok", &c.num_experts_per_tok, true, 0));
  MS_RETURN_IF_ERROR(r.int_field("n_group", &c.n_group, true, 1));
  MS_RETURN_IF_ERROR(r.int_field("topk_group", &c.topk_group, true, 1));
  MS_RETURN_IF_ERROR(r.bool_field("norm_topk_prob", &c.norm_topk_prob));
  MS_RETURN_IF_ERROR(r.double_field("routed_scaling_factor", &c.routed_scaling_factor));
  MS_RETURN_IF_ERROR(r.int_field("first_k_dense_replace", &c.first_k_dense_replace));
  MS_RETURN_IF_ERROR(r.int_field("moe_layer_freq", &c.moe_layer_freq));
  MS_RETURN_IF_ERROR(r.double_field("rms_norm_eps", &c.rms_norm_eps));
  MS_RETURN_IF_ERROR(r.double_field("rope_theta", &c.rope_theta));
  MS_RETURN_IF_ERROR(r.int_field("max_position_embeddings", &c.max_position_embeddings));
  MS_RETURN_IF_ERROR(r.bool_field("tie_word_embeddings", &c.tie_word_embeddings));
  MS_RETURN_IF_ERROR(r.opt_int_field("bos_token_id", &c.bos_token_id));

  if (const Json* eos = r.find("eos_token_id"); eos != nullptr && eos->is_array()) {
    if (eos->empty()) return r.error("eos_token_id", "must not be an empty list");
    int64_t first = 0;
    MS_RETURN_IF_ERROR(r.to_int("eos_token_id[0]", (*eos)[0], &first));
    c.eos_token_id = first;
  } else {
    MS_RETURN_IF_ERROR(r.opt_int_field("eos_token_id", &c.eos_token_id));
  }

  // Newer transformers write "dtype"; "torch_dtype" is the classic spelling.
  MS_RETURN_IF_ERROR(r.string_field("dtype", &c.torch_dtype));
  MS_RETURN_IF_ERROR(r.string_field("torch_dtype", &c.torch_dtype));

  std::string method;
  MS_RETURN_IF_ERROR(r.string_field("topk_method", &method));
  if (method == "greedy" || method == "gready") {
    c.topk_method = TopkMethod::kGreedy;
  } else if (method == "group_limited_greedy") {
    c.topk_method = TopkMethod::kGroupLimitedGreedy;
  } else if (method == "noaux_tc") {
    c.topk_method = TopkMethod::kNoauxTc;
  } else if (!method.empty()) {
    return r.error("topk_method", absl::StrCat("'", method,
                                               "' is not one of greedy, group_limited_greedy, "
                                               "noaux_tc"));
  }
  std::string scoring;
  MS_RETURN_IF_ERROR(r.string_field("scoring_func", &scoring));
  if (scoring == "softmax") {
    c.scoring_func = ScoringFunc::kSoftmax;
  } else if (scoring == "sigmoid") {
    c.scoring_func = ScoringFunc::kSigmoid;
  } else if (!scoring.empty()) {
    return r.error("scoring_func", absl::StrCat("'", scoring, "' is not softmax or sigmoid"));
  }
  std::string act = "silu";
  MS_RETURN_IF_ERROR(r.string_field("hidden_act", &act));
  if (act != "silu") {
    return r.error("hidden_act", absl::StrCat("'", act, "' is not supported (silu)"));
  }

  bool attention_bias = false;
  MS_RETURN_IF_ERROR(r.bool_field("attention_bias", &attention_bias));
  if (attention_bias) return r.error("attention_bias", "true is not supported (MLA has no bias)");

  MS_RETURN_IF_ERROR(parse_rope_scaling(root, source, &c.rope_scaling));
  MS_RETURN_IF_ERROR(parse_quantization(root, source, &c));
  MS_RETURN_IF_ERROR(validate(c, source));
  return c;
}

StatusOr<ModelConfig> load_model_config(const std::string& model_dir) {
  const std::string path = model_dir + "/config.json";
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("error reading ", path));
  return parse_model_config(ss.str(), path);
}

std::string model_config_to_json(const ModelConfig& c) {
  const bool v3 = c.arch == Architecture::kDeepseekV3;
  Json j;  // keys come out sorted, as transformers writes them
  j["architectures"] = {v3 ? "DeepseekV3ForCausalLM" : "DeepseekV2ForCausalLM"};
  j["model_type"] = c.model_type;
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["moe_intermediate_size"] = c.moe_intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_attention_heads;
  j["q_lora_rank"] = c.q_lora_rank ? Json(*c.q_lora_rank) : Json(nullptr);
  j["kv_lora_rank"] = c.kv_lora_rank;
  j["qk_nope_head_dim"] = c.qk_nope_head_dim;
  j["qk_rope_head_dim"] = c.qk_rope_head_dim;
  j["v_head_dim"] = c.v_head_dim;
  j["n_routed_experts"] = c.n_routed_experts > 0 ? Json(c.n_routed_experts) : Json(nullptr);
  j["n_shared_experts"] = c.n_shared_experts;
  j["num_experts_per_tok"] = c.num_experts_per_tok;
  j["n_group"] = c.n_group;
  j["topk_group"] = c.topk_group;
  j["topk_method"] = c.topk_method == TopkMethod::kGreedy               ? "greedy"
                     : c.topk_method == TopkMethod::kGroupLimitedGreedy ? "group_limited_greedy"
                                                                        : "noaux_tc";
  j["scoring_func"] = c.scoring_func == ScoringFunc::kSoftmax ? "softmax" : "sigmoid";
  j["norm_topk_prob"] = c.norm_topk_prob;
  j["routed_scaling_factor"] = c.routed_scaling_factor;
  j["first_k_dense_replace"] = c.first_k_dense_replace;
  j["moe_layer_freq"] = c.moe_layer_freq;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  if (c.rope_scaling.yarn) {
    const RopeScaling& rs = c.rope_scaling;
    j["rope_scaling"] = {{"type", "yarn"},
                         {"factor", rs.factor},
                         {"original_max_position_embeddings", rs.original_max_position_embeddings},
                         {"beta_fast", rs.beta_fast},
                         {"beta_slow", rs.beta_slow},
                         {"mscale", rs.mscale},
                         {"mscale_all_dim", rs.mscale_all_dim}};
  } else {
    j["rope_scaling"] = nullptr;
  }
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["bos_token_id"] = c.bos_token_id ? Json(*c.bos_token_id) : Json(nullptr);
  j["eos_token_id"] = c.eos_token_id ? Json(*c.eos_token_id) : Json(nullptr);
  j["torch_dtype"] = c.torch_dtype;
  j["hidden_act"] = "silu";
  j["attention_bias"] = false;
  if (c.fp8_block_quant) {
    j["quantization_config"] = {{"activation_scheme", "dynamic"},
                                {"fmt", "e4m3"},
                                {"quant_method", "fp8"},
                                {"weight_block_size", {c.fp8_block_n, c.fp8_block_k}}};
  }
  return j.dump(2) + "\n";
}

}  // namespace moeserve
