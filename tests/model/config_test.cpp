#include "model/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "nlohmann/json.hpp"

namespace moeserve {
namespace {

// DeepSeek-V3's config.json as published (Hugging Face spelling; auto_map omitted).
constexpr char kDeepseekV3[] = R"({
  "architectures": ["DeepseekV3ForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "aux_loss_alpha": 0.001,
  "bos_token_id": 0,
  "eos_token_id": 1,
  "ep_size": 1,
  "first_k_dense_replace": 3,
  "hidden_act": "silu",
  "hidden_size": 7168,
  "initializer_range": 0.02,
  "intermediate_size": 18432,
  "kv_lora_rank": 512,
  "max_position_embeddings": 163840,
  "model_type": "deepseek_v3",
  "moe_intermediate_size": 2048,
  "moe_layer_freq": 1,
  "n_group": 8,
  "n_routed_experts": 256,
  "n_shared_experts": 1,
  "norm_topk_prob": true,
  "num_attention_heads": 128,
  "num_experts_per_tok": 8,
  "num_hidden_layers": 61,
  "num_key_value_heads": 128,
  "num_nextn_predict_layers": 1,
  "pretraining_tp": 1,
  "q_lora_rank": 1536,
  "qk_nope_head_dim": 128,
  "qk_rope_head_dim": 64,
  "quantization_config": {
    "activation_scheme": "dynamic",
    "fmt": "e4m3",
    "quant_method": "fp8",
    "weight_block_size": [128, 128]
  },
  "rms_norm_eps": 1e-06,
  "rope_scaling": {
    "beta_fast": 32,
    "beta_slow": 1,
    "factor": 40,
    "mscale": 1.0,
    "mscale_all_dim": 1.0,
    "original_max_position_embeddings": 4096,
    "type": "yarn"
  },
  "rope_theta": 10000,
  "routed_scaling_factor": 2.5,
  "scoring_func": "sigmoid",
  "seq_aux": true,
  "tie_word_embeddings": false,
  "topk_group": 4,
  "topk_method": "noaux_tc",
  "torch_dtype": "bfloat16",
  "transformers_version": "4.33.1",
  "use_cache": true,
  "v_head_dim": 128,
  "vocab_size": 129280
})";

// DeepSeek-V2-Lite's config.json (q_proj instead of q_lora: q_lora_rank null).
constexpr char kDeepseekV2Lite[] = R"({
  "architectures": ["DeepseekV2ForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "aux_loss_alpha": 0.001,
  "bos_token_id": 100000,
  "eos_token_id": 100001,
  "first_k_dense_replace": 1,
  "hidden_act": "silu",
  "hidden_size": 2048,
  "initializer_range": 0.02,
  "intermediate_size": 10944,
  "kv_lora_rank": 512,
  "max_position_embeddings": 163840,
  "model_type": "deepseek_v2",
  "moe_intermediate_size": 1408,
  "moe_layer_freq": 1,
  "n_group": 1,
  "n_routed_experts": 64,
  "n_shared_experts": 2,
  "norm_topk_prob": false,
  "num_attention_heads": 16,
  "num_experts_per_tok": 6,
  "num_hidden_layers": 27,
  "num_key_value_heads": 16,
  "pretraining_tp": 1,
  "q_lora_rank": null,
  "qk_nope_head_dim": 128,
  "qk_rope_head_dim": 64,
  "rms_norm_eps": 1e-06,
  "rope_scaling": {
    "beta_fast": 32,
    "beta_slow": 1,
    "factor": 40,
    "mscale": 0.707,
    "mscale_all_dim": 0.707,
    "original_max_position_embeddings": 4096,
    "type": "yarn"
  },
  "rope_theta": 10000,
  "routed_scaling_factor": 1.0,
  "scoring_func": "softmax",
  "seq_aux": true,
  "tie_word_embeddings": false,
  "topk_group": 1,
  "topk_method": "greedy",
  "torch_dtype": "bfloat16",
  "transformers_version": "4.33.1",
  "use_cache": true,
  "v_head_dim": 128,
  "vocab_size": 102400
})";

// Applies `patch` (a JSON object; null values delete keys) to `base` and parses the result.
StatusOr<ModelConfig> parse_patched(const char* base, const std::string& patch) {
  nlohmann::json j = nlohmann::json::parse(base);
  const nlohmann::json changes = nlohmann::json::parse(patch);
  for (const auto& [k, v] : changes.items()) {
    if (v.is_string() && v.get<std::string>() == "<delete>") {
      j.erase(k);
    } else {
      j[k] = v;
    }
  }
  return parse_model_config(j.dump(), "config.json");
}

void expect_error(const char* base, const std::string& patch,
                  std::initializer_list<std::string> needles) {
  const auto c = parse_patched(base, patch);
  ASSERT_FALSE(c.ok()) << "accepted patch " << patch;
  const std::string msg(c.status().message());
  EXPECT_NE(msg.find("config.json"), std::string::npos) << msg;
  for (const std::string& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << msg;
}

TEST(ConfigTest, ParsesDeepseekV3) {
  auto r = parse_model_config(kDeepseekV3, "config.json");
  ASSERT_TRUE(r.ok()) << r.status();
  const ModelConfig& c = *r;
  EXPECT_EQ(c.arch, Architecture::kDeepseekV3);
  EXPECT_EQ(c.model_type, "deepseek_v3");
  EXPECT_EQ(c.vocab_size, 129280);
  EXPECT_EQ(c.hidden_size, 7168);
  EXPECT_EQ(c.intermediate_size, 18432);
  EXPECT_EQ(c.moe_intermediate_size, 2048);
  EXPECT_EQ(c.num_hidden_layers, 61);
  EXPECT_EQ(c.num_attention_heads, 128);
  EXPECT_EQ(c.q_lora_rank, 1536);
  EXPECT_EQ(c.kv_lora_rank, 512);
  EXPECT_EQ(c.qk_nope_head_dim, 128);
  EXPECT_EQ(c.qk_rope_head_dim, 64);
  EXPECT_EQ(c.v_head_dim, 128);
  EXPECT_EQ(c.qk_head_dim(), 192);
  EXPECT_EQ(c.n_routed_experts, 256);
  EXPECT_EQ(c.n_shared_experts, 1);
  EXPECT_EQ(c.num_experts_per_tok, 8);
  EXPECT_EQ(c.n_group, 8);
  EXPECT_EQ(c.topk_group, 4);
  EXPECT_EQ(c.topk_method, TopkMethod::kNoauxTc);
  EXPECT_EQ(c.scoring_func, ScoringFunc::kSigmoid);
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_DOUBLE_EQ(c.routed_scaling_factor, 2.5);
  EXPECT_EQ(c.first_k_dense_replace, 3);
  EXPECT_EQ(c.moe_layer_freq, 1);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_TRUE(c.rope_scaling.yarn);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 40.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 4096);
  EXPECT_DOUBLE_EQ(c.rope_scaling.beta_fast, 32.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.beta_slow, 1.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.mscale, 1.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.mscale_all_dim, 1.0);
  EXPECT_EQ(c.max_position_embeddings, 163840);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.bos_token_id, 0);
  EXPECT_EQ(c.eos_token_id, 1);
  EXPECT_EQ(c.torch_dtype, "bfloat16");
  EXPECT_TRUE(c.fp8_block_quant);
  EXPECT_EQ(c.fp8_block_n, 128);
  EXPECT_EQ(c.fp8_block_k, 128);
  EXPECT_NEAR(c.softmax_scale(), 0.13523, 1e-4);
  EXPECT_FALSE(c.is_moe_layer(2));
  EXPECT_TRUE(c.is_moe_layer(3));
  EXPECT_TRUE(c.is_moe_layer(60));
}

TEST(ConfigTest, ParsesDeepseekV2Lite) {
  auto r = parse_model_config(kDeepseekV2Lite, "config.json");
  ASSERT_TRUE(r.ok()) << r.status();
  const ModelConfig& c = *r;
  EXPECT_EQ(c.arch, Architecture::kDeepseekV2);
  EXPECT_EQ(c.model_type, "deepseek_v2");
  EXPECT_EQ(c.vocab_size, 102400);
  EXPECT_EQ(c.hidden_size, 2048);
  EXPECT_EQ(c.intermediate_size, 10944);
  EXPECT_EQ(c.moe_intermediate_size, 1408);
  EXPECT_EQ(c.num_hidden_layers, 27);
  EXPECT_EQ(c.num_attention_heads, 16);
  EXPECT_FALSE(c.q_lora_rank.has_value());
  EXPECT_EQ(c.kv_lora_rank, 512);
  EXPECT_EQ(c.qk_nope_head_dim, 128);
  EXPECT_EQ(c.qk_rope_head_dim, 64);
  EXPECT_EQ(c.v_head_dim, 128);
  EXPECT_EQ(c.n_routed_experts, 64);
  EXPECT_EQ(c.n_shared_experts, 2);
  EXPECT_EQ(c.num_experts_per_tok, 6);
  EXPECT_EQ(c.n_group, 1);
  EXPECT_EQ(c.topk_group, 1);
  EXPECT_EQ(c.topk_method, TopkMethod::kGreedy);
  EXPECT_EQ(c.scoring_func, ScoringFunc::kSoftmax);
  EXPECT_FALSE(c.norm_topk_prob);
  EXPECT_DOUBLE_EQ(c.routed_scaling_factor, 1.0);
  EXPECT_EQ(c.first_k_dense_replace, 1);
  EXPECT_EQ(c.moe_layer_freq, 1);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_TRUE(c.rope_scaling.yarn);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 40.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 4096);
  EXPECT_DOUBLE_EQ(c.rope_scaling.beta_fast, 32.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.beta_slow, 1.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.mscale, 0.707);
  EXPECT_DOUBLE_EQ(c.rope_scaling.mscale_all_dim, 0.707);
  EXPECT_EQ(c.max_position_embeddings, 163840);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.bos_token_id, 100000);
  EXPECT_EQ(c.eos_token_id, 100001);
  EXPECT_EQ(c.torch_dtype, "bfloat16");
  EXPECT_FALSE(c.fp8_block_quant);
  EXPECT_NEAR(c.softmax_scale(), 0.11472, 1e-4);
  EXPECT_FALSE(c.is_moe_layer(0));
  EXPECT_TRUE(c.is_moe_layer(1));
}

TEST(ConfigTest, SoftmaxScaleAndMscale) {
  EXPECT_DOUBLE_EQ(yarn_get_mscale(1.0, 1.0), 1.0);
  EXPECT_DOUBLE_EQ(yarn_get_mscale(0.5, 1.0), 1.0);
  EXPECT_NEAR(yarn_get_mscale(40.0, 1.0), 1.368888, 1e-6);
  // No yarn, or mscale_all_dim 0: plain 1/sqrt(qk_head_dim).
  auto plain = parse_patched(kDeepseekV3, R"({"rope_scaling": null})");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_DOUBLE_EQ(plain->softmax_scale(), 1.0 / std::sqrt(192.0));
  auto zero = parse_patched(kDeepseekV3, R"({"rope_scaling": {"type": "yarn", "factor": 40}})");
  ASSERT_TRUE(zero.ok()) << zero.status();
  EXPECT_DOUBLE_EQ(zero->softmax_scale(), 1.0 / std::sqrt(192.0));
  EXPECT_EQ(zero->rope_scaling.original_max_position_embeddings, 4096);
  EXPECT_DOUBLE_EQ(zero->rope_scaling.mscale_all_dim, 0.0);
}

TEST(ConfigTest, RoundTripsThroughJson) {
  for (const char* text : {kDeepseekV3, kDeepseekV2Lite}) {
    auto c = parse_model_config(text, "config.json");
    ASSERT_TRUE(c.ok()) << c.status();
    const std::string out = model_config_to_json(*c);
    auto again = parse_model_config(out, "written");
    ASSERT_TRUE(again.ok()) << again.status() << "\n" << out;
    EXPECT_TRUE(*again == *c) << out;
    const auto j = nlohmann::json::parse(out);
    EXPECT_TRUE(j.contains("architectures"));
    EXPECT_TRUE(j.contains("torch_dtype"));
    EXPECT_FALSE(j.contains("auto_map"));
    EXPECT_EQ(j.contains("quantization_config"), c->fp8_block_quant);
  }
  // A dense V2 without rope scaling, with odd values, survives too.
  auto dense = parse_patched(kDeepseekV2Lite,
                             R"({"n_routed_experts": null, "num_experts_per_tok": null,
                                 "rope_scaling": null, "eos_token_id": null,
                                 "q_lora_rank": 384, "rms_norm_eps": 1.234567890123e-7,
                                 "tie_word_embeddings": true, "torch_dtype": "float32"})");
  ASSERT_TRUE(dense.ok()) << dense.status();
  EXPECT_EQ(dense->n_routed_experts, 0);
  EXPECT_FALSE(dense->is_moe_layer(5));
  EXPECT_FALSE(dense->eos_token_id.has_value());
  auto again = parse_model_config(model_config_to_json(*dense), "written");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(*again == *dense);
}

TEST(ConfigTest, DefaultsFollowHuggingFace) {
  auto v3 = parse_model_config(R"({"architectures": ["DeepseekV3ForCausalLM"]})", "config.json");
  ASSERT_TRUE(v3.ok()) << v3.status();
  EXPECT_EQ(v3->vocab_size, 129280);
  EXPECT_EQ(v3->n_routed_experts, 256);
  EXPECT_EQ(v3->topk_method, TopkMethod::kNoauxTc);
  EXPECT_EQ(v3->max_position_embeddings, 4096);
  EXPECT_EQ(v3->q_lora_rank, 1536);
  EXPECT_FALSE(v3->rope_scaling.yarn);
  EXPECT_EQ(v3->model_type, "deepseek_v3");

  auto v2 = parse_model_config(R"({"model_type": "deepseek_v2"})", "config.json");
  ASSERT_TRUE(v2.ok()) << v2.status();
  EXPECT_EQ(v2->arch, Architecture::kDeepseekV2);
  EXPECT_EQ(v2->vocab_size, 102400);
  EXPECT_EQ(v2->hidden_size, 4096);
  EXPECT_EQ(v2->n_routed_experts, 0);  // dense unless stated
  EXPECT_EQ(v2->max_position_embeddings, 2048);
  EXPECT_EQ(v2->bos_token_id, 100000);
}

TEST(ConfigTest, EosListAndDtypeSpelling) {
  auto c = parse_patched(kDeepseekV3, R"({"eos_token_id": [7, 1], "torch_dtype": "<delete>",
                                          "dtype": "float16"})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->eos_token_id, 7);
  EXPECT_EQ(c->torch_dtype, "float16");
  expect_error(kDeepseekV3, R"({"eos_token_id": []})", {"eos_token_id"});
  expect_error(kDeepseekV3, R"({"eos_token_id": 999999})", {"eos_token_id", "vocab_size"});
}

TEST(ConfigTest, RejectsUnsupportedModels) {
  expect_error(kDeepseekV3, R"({"architectures": ["Qwen3MoeForCausalLM"]})",
               {"unsupported architecture Qwen3MoeForCausalLM"});
  expect_error(kDeepseekV3, R"({"architectures": "<delete>", "model_type": "llama"})",
               {"unsupported architecture 'llama'"});
  expect_error(kDeepseekV3, R"({"model_type": "deepseek_v2"})", {"model_type", "contradicts"});
  expect_error(kDeepseekV3, R"({"architectures": []})", {"architectures"});
  expect_error(kDeepseekV3, R"({"rope_scaling": {"type": "linear", "factor": 2}})",
               {"rope_scaling.type", "linear"});
  expect_error(kDeepseekV3, R"({"rope_scaling": {"rope_type": "yarn"}})", {"rope_scaling.factor"});
  expect_error(kDeepseekV3, R"({"topk_method": "top2"})", {"topk_method", "top2"});
  expect_error(kDeepseekV3, R"({"scoring_func": "relu"})", {"scoring_func", "relu"});
  expect_error(kDeepseekV3, R"({"hidden_act": "gelu"})", {"hidden_act"});
  expect_error(kDeepseekV3, R"({"quantization_config": {"quant_method": "awq"}})",
               {"quantization_config.quant_method", "awq"});
  expect_error(kDeepseekV3, R"({"quantization_config": {"quant_method": "fp8"}})",
               {"quantization_config.weight_block_size"});
  expect_error(kDeepseekV3,
               R"({"quantization_config": {"quant_method": "fp8", "fmt": "e5m2",
                   "weight_block_size": [128, 128]}})",
               {"quantization_config.fmt"});
  expect_error(kDeepseekV3, R"({"torch_dtype": "int4"})", {"torch_dtype"});
}

TEST(ConfigTest, RejectsBadTypesAndValues) {
  expect_error(kDeepseekV3, R"({"hidden_size": "7168"})", {"hidden_size", "integer"});
  expect_error(kDeepseekV3, R"({"hidden_size": 7168.5})", {"hidden_size", "integer"});
  expect_error(kDeepseekV3, R"({"hidden_size": 0})", {"hidden_size", ">= 1"});
  expect_error(kDeepseekV3, R"({"num_hidden_layers": -3})", {"num_hidden_layers"});
  expect_error(kDeepseekV3, R"({"vocab_size": 18446744073709551615})", {"vocab_size", "large"});
  expect_error(kDeepseekV3, R"({"norm_topk_prob": 1})", {"norm_topk_prob"});
  expect_error(kDeepseekV3, R"({"q_lora_rank": 0})", {"q_lora_rank"});
  expect_error(kDeepseekV3, R"({"qk_rope_head_dim": 63})", {"qk_rope_head_dim", "even"});
  expect_error(kDeepseekV3, R"({"rms_norm_eps": 0})", {"rms_norm_eps"});
  expect_error(kDeepseekV3, R"({"first_k_dense_replace": 62})", {"first_k_dense_replace"});
  expect_error(kDeepseekV3, R"({"moe_layer_freq": 0})", {"moe_layer_freq"});
  expect_error(kDeepseekV3, R"({"num_experts_per_tok": 300})",
               {"num_experts_per_tok", "n_routed_experts=256"});
  expect_error(kDeepseekV3, R"({"num_experts_per_tok": 0})", {"num_experts_per_tok"});
  expect_error(kDeepseekV3, R"({"n_group": 7})", {"n_routed_experts (256)", "n_group (7)"});
  expect_error(kDeepseekV3, R"({"topk_group": 9})", {"topk_group (9)", "n_group (8)"});
  // noaux_tc picks 4 of 8 groups of 32 experts: at most 128 experts are reachable.
  expect_error(kDeepseekV3, R"({"topk_group": 1, "num_experts_per_tok": 33})",
               {"num_experts_per_tok (33)", "topk_group"});
  EXPECT_TRUE(parse_patched(kDeepseekV3, R"({"topk_group": 1, "num_experts_per_tok": 32})").ok());
  // Greedy ignores groups, so the same numbers are fine there.
  EXPECT_TRUE(parse_patched(kDeepseekV3, R"({"topk_method": "greedy", "topk_group": 1,
                                             "num_experts_per_tok": 33})")
                  .ok());
  // Every method / scoring combination is accepted.
  for (const char* m : {"greedy", "group_limited_greedy", "noaux_tc"}) {
    for (const char* s : {"softmax", "sigmoid"}) {
      const std::string patch =
          std::string(R"({"topk_method": ")") + m + R"(", "scoring_func": ")" + s + R"("})";
      EXPECT_TRUE(parse_patched(kDeepseekV3, patch).ok()) << patch;
    }
  }
  const auto bad_json = parse_model_config("{", "my/config.json");
  ASSERT_FALSE(bad_json.ok());
  EXPECT_NE(std::string(bad_json.status().message()).find("my/config.json"), std::string::npos);
  EXPECT_FALSE(parse_model_config("[1]", "config.json").ok());
}

TEST(ConfigTest, LoadNamesThePath) {
  const std::filesystem::path dir =
      std::filesystem::path(testing::TempDir()) / ("moeserve_cfg_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto missing = load_model_config(dir.string() + "/absent");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(std::string(missing.status().message()).find("absent/config.json"), std::string::npos);
  std::ofstream(dir / "config.json") << kDeepseekV2Lite;
  auto ok = load_model_config(dir.string());
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->hidden_size, 2048);
  std::ofstream(dir / "config.json") << R"({"architectures": ["DeepseekV2ForCausalLM"],
                                            "hidden_size": -1})";
  auto bad = load_model_config(dir.string());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find((dir / "config.json").string()),
            std::string::npos);
}

}  // namespace
}  // namespace moeserve
