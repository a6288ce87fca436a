#include "gen/gen_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "gen/gen_tokenizer.h"
#include "model/checkpoint.h"
#include "model/temp_dir.h"
#include "nlohmann/json.hpp"

namespace moeserve {
namespace {

using testing_dirs::temp_dir;

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string model_dir(const std::string& arch, DType dtype, int shards, uint64_t seed = 7,
                      bool twin = false) {
  const std::string d = temp_dir(absl::StrCat(arch, "_", std::string(dtype_name(dtype)), "_",
                                              shards, "_", seed, twin ? "_twin" : ""));
  GenModelOptions o;
  o.arch = arch;
  o.preset = "tiny";
  o.dtype = dtype;
  o.seed = seed;
  o.num_shards = shards;
  o.dequantized_twin = twin;
  const Status st = generate_model(d, o);
  EXPECT_TRUE(st.ok()) << st;
  return d;
}

float as_f32(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DType::kF32:
      return t.data<float>()[i];
    case DType::kBF16:
      return bf16_to_f32(t.data<uint16_t>()[i]);
    default:
      ADD_FAILURE() << "unexpected dtype";
      return 0.0f;
  }
}

TEST(PresetConfig, V2LiteHasDeepSeekV2LiteShapes) {
  auto c = preset_config("", "v2-lite-4l");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->model_type, "deepseek_v2");
  EXPECT_EQ(c->hidden_size, 2048);
  EXPECT_EQ(c->num_attention_heads, 16);
  EXPECT_FALSE(c->q_lora_rank.has_value());
  EXPECT_EQ(c->kv_lora_rank, 512);
  EXPECT_EQ(c->qk_nope_head_dim, 128);
  EXPECT_EQ(c->qk_rope_head_dim, 64);
  EXPECT_EQ(c->v_head_dim, 128);
  EXPECT_EQ(c->n_routed_experts, 64);
  EXPECT_EQ(c->num_experts_per_tok, 6);
  EXPECT_EQ(c->n_shared_experts, 2);
  EXPECT_EQ(c->moe_intermediate_size, 1408);
  EXPECT_EQ(c->intermediate_size, 10944);
  EXPECT_EQ(c->vocab_size, 102400);
  EXPECT_EQ(c->topk_method, TopkMethod::kGreedy);
  EXPECT_EQ(c->scoring_func, ScoringFunc::kSoftmax);
  EXPECT_FALSE(c->norm_topk_prob);
  EXPECT_DOUBLE_EQ(c->rope_scaling.mscale_all_dim, 0.707);
  EXPECT_EQ(c->num_hidden_layers, 4);
}

TEST(PresetConfig, V3RoutingAndArchDefaults) {
  auto c = preset_config("", "v3-4l");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->n_routed_experts, 256);
  EXPECT_EQ(c->num_experts_per_tok, 8);
  EXPECT_EQ(c->n_group, 8);
  EXPECT_EQ(c->topk_group, 4);
  EXPECT_EQ(c->topk_method, TopkMethod::kNoauxTc);
  EXPECT_EQ(c->scoring_func, ScoringFunc::kSigmoid);
  EXPECT_DOUBLE_EQ(c->routed_scaling_factor, 2.5);
  EXPECT_EQ(c->q_lora_rank, 384);

  auto tiny = preset_config("", "tiny");
  ASSERT_TRUE(tiny.ok());
  EXPECT_EQ(tiny->model_type, "deepseek_v3");
  auto tiny_v2 = preset_config("deepseek_v2", "tiny");
  ASSERT_TRUE(tiny_v2.ok());
  EXPECT_EQ(tiny_v2->topk_method, TopkMethod::kGroupLimitedGreedy);
  EXPECT_FALSE(tiny_v2->q_lora_rank.has_value());
}

TEST(PresetConfig, ErrorsNameTheProblem) {
  auto bad = preset_config("deepseek_v3", "v2-lite-4l");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("deepseek_v2"), std::string_view::npos);
  EXPECT_FALSE(preset_config("", "huge").ok());
  EXPECT_FALSE(preset_config("llama", "tiny").ok());
}

TEST(GenModel, RejectsBadOptions) {
  GenModelOptions o;
  o.dtype = DType::kI32;
  EXPECT_FALSE(generate_model(temp_dir("bad1"), o).ok());
  o.dtype = DType::kBF16;
  o.dequantized_twin = true;
  EXPECT_FALSE(generate_model(temp_dir("bad2"), o).ok());
  o.dequantized_twin = false;
  o.num_shards = 0;
  EXPECT_FALSE(generate_model(temp_dir("bad3"), o).ok());
}

struct Case {
  std::string arch;
  DType dtype;
  int shards;
};

class GenModelLayout : public ::testing::TestWithParam<Case> {};

TEST_P(GenModelLayout, CheckpointMatchesSpecsAndConfigRoundTrips) {
  const Case k = GetParam();
  const std::string dir = model_dir(k.arch, k.dtype, k.shards);
  auto want = preset_config(k.arch, "tiny");
  ASSERT_TRUE(want.ok());

  auto cfg = load_model_config(dir);
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->model_type, k.arch);
  EXPECT_EQ(cfg->hidden_size, want->hidden_size);
  EXPECT_EQ(cfg->q_lora_rank, want->q_lora_rank);
  EXPECT_EQ(cfg->kv_lora_rank, want->kv_lora_rank);
  EXPECT_EQ(cfg->n_routed_experts, want->n_routed_experts);
  EXPECT_EQ(cfg->n_group, want->n_group);
  EXPECT_EQ(cfg->topk_group, want->topk_group);
  EXPECT_EQ(cfg->topk_method, want->topk_method);
  EXPECT_EQ(cfg->scoring_func, want->scoring_func);
  EXPECT_EQ(cfg->norm_topk_prob, want->norm_topk_prob);
  EXPECT_DOUBLE_EQ(cfg->routed_scaling_factor, want->routed_scaling_factor);
  EXPECT_TRUE(cfg->rope_scaling.yarn);
  EXPECT_DOUBLE_EQ(cfg->rope_scaling.mscale, want->rope_scaling.mscale);
  EXPECT_EQ(cfg->bos_token_id, 0);
  EXPECT_EQ(cfg->eos_token_id, 1);
  EXPECT_EQ(cfg->fp8_block_quant, k.dtype == DType::kF8E4M3);
  EXPECT_EQ(cfg->torch_dtype, k.dtype == DType::kF32 ? "float32" : "bfloat16");
  ModelConfig full = *want;  // every field: the preset plus what the dtype sets
  full.torch_dtype = cfg->torch_dtype;
  full.fp8_block_quant = cfg->fp8_block_quant;
  EXPECT_TRUE(*cfg == full);
  // Serialising the parsed config again gives the same text.
  EXPECT_EQ(model_config_to_json(*cfg), read_file(dir + "/config.json"));

  auto ck = Checkpoint::open(dir);
  ASSERT_TRUE(ck.ok()) << ck.status();
  std::set<std::string> expected;
  for (const GenTensorSpec& s : checkpoint_tensor_specs(*want, k.dtype)) {
    expected.insert(s.name);
    auto t = ck->get(s.name);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ(t->shape(), s.shape) << s.name;
    EXPECT_EQ(t->dtype(), s.dtype) << s.name;
    if (s.fp8_scale) {
      expected.insert(s.name + "_scale_inv");
      auto sc = ck->get(s.name + "_scale_inv");
      ASSERT_TRUE(sc.ok()) << sc.status();
      EXPECT_EQ(sc->dtype(), DType::kF32);
      EXPECT_EQ(sc->shape(),
                (std::vector<int64_t>{(s.shape[0] + 127) / 128, (s.shape[1] + 127) / 128}));
    }
  }
  const std::vector<std::string> names = ck->names();
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()), expected);
  EXPECT_EQ(ck->has("lm_head.weight"), true);
  EXPECT_EQ(ck->has("model.layers.1.mlp.gate.e_score_correction_bias"), k.arch == "deepseek_v3");
  EXPECT_EQ(ck->has("model.layers.0.mlp.gate.weight"), false);  // first_k_dense_replace 1
  EXPECT_EQ(ck->has("model.layers.1.self_attn.q_proj.weight"), k.arch == "deepseek_v2");
  EXPECT_EQ(std::filesystem::exists(dir + "/model.safetensors.index.json"), k.shards > 1);

  auto gen = nlohmann::json::parse(read_file(dir + "/generation_config.json"));
  EXPECT_EQ(gen["bos_token_id"], 0);
  EXPECT_EQ(gen["eos_token_id"], 1);
  EXPECT_TRUE(gen.contains("temperature"));
}

INSTANTIATE_TEST_SUITE_P(
    Tiny, GenModelLayout,
    ::testing::Values(Case{"deepseek_v3", DType::kF32, 1}, Case{"deepseek_v3", DType::kBF16, 3},
                      Case{"deepseek_v3", DType::kF8E4M3, 1},
                      Case{"deepseek_v3", DType::kF8E4M3, 3}, Case{"deepseek_v2", DType::kF32, 3},
                      Case{"deepseek_v2", DType::kBF16, 1}, Case{"deepseek_v2", DType::kF8E4M3, 3}),
    [](const ::testing::TestParamInfo<Case>& info) {
      return absl::StrCat(info.param.arch, "_", std::string(dtype_name(info.param.dtype)), "_",
                          info.param.shards);
    });

TEST(GenModel, SameSeedSameValuesAcrossDtypesAndShards) {
  const std::string f32 = model_dir("deepseek_v3", DType::kF32, 1);
  const std::string bf16 = model_dir("deepseek_v3", DType::kBF16, 3);
  const std::string other_seed = model_dir("deepseek_v3", DType::kF32, 1, 8);
  auto a = Checkpoint::open(f32);
  auto b = Checkpoint::open(bf16);
  auto c = Checkpoint::open(other_seed);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  int64_t differing_seed = 0;
  for (const std::string& name : a->names()) {
    auto ta = a->get(name);
    auto tb = b->get(name);
    auto tc = c->get(name);
    ASSERT_TRUE(ta.ok() && tb.ok() && tc.ok()) << name;
    ASSERT_EQ(ta->numel(), tb->numel());
    for (int64_t i = 0; i < ta->numel(); ++i) {
      const float v = ta->data<float>()[i];
      const float want = tb->dtype() == DType::kF32 ? v : bf16_to_f32(f32_to_bf16(v));
      ASSERT_EQ(as_f32(*tb, i), want) << name << "[" << i << "]";
      if (tc->data<float>()[i] != v) ++differing_seed;
      ASSERT_TRUE(std::isfinite(v));
    }
  }
  EXPECT_GT(differing_seed, 1000);
}

TEST(GenModel, Fp8IsBlockQuantisationOfTheSameValuesAndTwinIsItsDequantisation) {
  const std::string f32 = model_dir("deepseek_v3", DType::kF32, 1);
  const std::string fp8 = model_dir("deepseek_v3", DType::kF8E4M3, 1);
  const std::string twin = model_dir("deepseek_v3", DType::kF8E4M3, 3, 7, true);
  auto a = Checkpoint::open(f32);
  auto q = Checkpoint::open(fp8);
  auto t = Checkpoint::open(twin);
  ASSERT_TRUE(a.ok() && q.ok() && t.ok());
  auto twin_cfg = load_model_config(twin);
  ASSERT_TRUE(twin_cfg.ok());
  EXPECT_FALSE(twin_cfg->fp8_block_quant);
  int64_t fp8_tensors = 0;
  for (const std::string& name : t->names()) {
    auto tt = t->get(name);
    auto tq = q->get(name);
    auto ta = a->get(name);
    ASSERT_TRUE(tt.ok() && tq.ok() && ta.ok()) << name;
    if (tq->dtype() != DType::kF8E4M3) {  // non-Linear tensors: identical bytes
      ASSERT_EQ(tq->nbytes(), tt->nbytes());
      EXPECT_EQ(std::memcmp(tq->raw(), tt->raw(), tq->nbytes()), 0) << name;
      continue;
    }
    ++fp8_tensors;
    ASSERT_EQ(tt->dtype(), DType::kBF16) << name;
    auto sc = q->get(name + "_scale_inv");
    ASSERT_TRUE(sc.ok());
    const int64_t rows = tq->dim(0);
    const int64_t cols = tq->dim(1);
    const int64_t scols = sc->dim(1);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t col = 0; col < cols; ++col) {
        const int64_t i = r * cols + col;
        const float scale = sc->data<float>()[(r / 128) * scols + col / 128];
        const float deq = fp8e4m3_to_f32(tq->data<uint8_t>()[i]) * scale;
        ASSERT_EQ(tt->data<uint16_t>()[i], f32_to_bf16(deq)) << name << "[" << i << "]";
        const float orig = ta->data<float>()[i];
        // e4m3 keeps 3 mantissa bits (relative step 2^-3, rounding half of it); its
        // subnormal step is 2^-9 of the scale.
        ASSERT_LE(std::fabs(deq - orig), std::fabs(orig) / 16.0f + scale / 1024.0f + 1e-12f)
            << name << "[" << i << "]";
      }
    }
  }
  EXPECT_GT(fp8_tensors, 20);
}

TEST(GenTokenizer, VocabCoversExactlyTheConfiguredIds) {
  for (int64_t vocab : {260, 512, 5000}) {
    auto text = generated_tokenizer_json(vocab);
    ASSERT_TRUE(text.ok()) << text.status();
    auto j = nlohmann::json::parse(*text);
    const auto& v = j["model"]["vocab"];
    EXPECT_EQ(static_cast<int64_t>(v.size()), vocab);
    std::set<int64_t> ids;
    for (const auto& [tok, id] : v.items()) ids.insert(id.get<int64_t>());
    EXPECT_EQ(static_cast<int64_t>(ids.size()), vocab);
    EXPECT_EQ(*ids.begin(), 0);
    EXPECT_EQ(*ids.rbegin(), vocab - 1);
    EXPECT_EQ(v["<｜begin▁of▁sentence｜>"], 0);
    EXPECT_EQ(v["<｜end▁of▁sentence｜>"], 1);
    EXPECT_EQ(v["Ġ"], 4 + ' ');  // GPT-2 maps the space byte to U+0120
    EXPECT_EQ(v["A"], 4 + 'A');
    // Every merge joins two tokens already in the vocabulary into one that is too.
    for (const auto& m : j["model"]["merges"]) {
      const std::string s = m.get<std::string>();
      const size_t sp = s.find(' ');
      ASSERT_NE(sp, std::string::npos);
      const std::string l = s.substr(0, sp);
      const std::string r = s.substr(sp + 1);
      EXPECT_TRUE(v.contains(l) && v.contains(r) && v.contains(l + r)) << s;
    }
    if (vocab == 260) {
      EXPECT_TRUE(j["model"]["merges"].empty());
    }
    if (vocab == 512) {
      EXPECT_GT(j["model"]["merges"].size(), 100u);
    }
  }
  EXPECT_FALSE(generated_tokenizer_json(100).ok());
  auto cfg = nlohmann::json::parse(generated_tokenizer_config_json(2048));
  EXPECT_EQ(cfg["add_bos_token"], true);
  EXPECT_EQ(cfg["bos_token"]["content"], "<｜begin▁of▁sentence｜>");
  EXPECT_NE(cfg["chat_template"].get<std::string>().find("<｜Assistant｜>"), std::string::npos);
}

TEST(GenModel, TiedEmbeddingsAndMoeLayerFrequencyShapeTheTensorList) {
  auto c = preset_config("deepseek_v2", "tiny");
  ASSERT_TRUE(c.ok());
  c->tie_word_embeddings = true;
  c->num_hidden_layers = 4;
  c->moe_layer_freq = 2;
  std::set<std::string> names;
  for (const GenTensorSpec& s : checkpoint_tensor_specs(*c, DType::kBF16)) names.insert(s.name);
  EXPECT_FALSE(names.count("lm_head.weight"));
  EXPECT_TRUE(names.count("model.layers.1.mlp.down_proj.weight"));
  EXPECT_TRUE(names.count("model.layers.2.mlp.experts.15.down_proj.weight"));
  EXPECT_TRUE(names.count("model.layers.2.mlp.shared_experts.up_proj.weight"));
  EXPECT_FALSE(names.count("model.layers.2.mlp.gate.e_score_correction_bias"));  // v2
  EXPECT_TRUE(names.count("model.layers.3.mlp.gate_proj.weight"));
}

}  // namespace
}  // namespace moeserve
