#include "gen/gen_model.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <vector>

#include "core/tensor.h"
#include "gen/gen_tokenizer.h"
#include "model/checkpoint.h"
#include "nlohmann/json.hpp"

namespace moeserve {
namespace {

// How a tensor is initialised and which dtype it takes in an fp8 checkpoint.
enum class Kind {
  kEmbed,   // N(0,1)-like; BF16 in fp8 mode
  kLmHead,  // 3/sqrt(hidden) spread, so next-token distributions are peaked; BF16 in fp8
  kNorm,    // 1 +- 0.1; BF16 in fp8 mode
  kLinear,  // 1/sqrt(in) spread; F8_E4M3 + scale_inv in fp8 mode
  kRouter,  // wide spread so routing is decisive; BF16 in fp8 mode
  kBias,    // e_score_correction_bias, +-0.1; F32 always
};

struct Spec {
  GenTensorSpec t;
  Kind kind;
  // Router logit std: sigmoid scores separate best around 2 (wider saturates them);
  // softmax ranks by logits, so a wider spread only makes routing more decisive.
  float router_std = 2.0f;
};

constexpr int64_t kFp8Block = 128;

std::vector<Spec> build_specs(const ModelConfig& c, DType dtype) {
  const DType wide = dtype == DType::kF32 ? DType::kF32 : DType::kBF16;
  const DType lin = dtype;  // kF32, kBF16 or kF8E4M3
  const bool fp8 = dtype == DType::kF8E4M3;
  std::vector<Spec> out;
  auto add = [&](std::string name, std::vector<int64_t> shape, Kind kind) {
    DType dt = wide;
    bool scale = false;
    if (kind == Kind::kLinear) {
      dt = lin;
      scale = fp8;
    } else if (kind == Kind::kBias) {
      dt = DType::kF32;
    }
    const float router_std = c.scoring_func == ScoringFunc::kSoftmax ? 4.0f : 2.0f;
    out.push_back({{std::move(name), std::move(shape), dt, scale}, kind, router_std});
  };
  const int64_t h = c.hidden_size;
  const int64_t heads = c.num_attention_heads;
  auto mlp = [&](const std::string& prefix, int64_t inter) {
    add(prefix + ".gate_proj.weight", {inter, h}, Kind::kLinear);
    add(prefix + ".up_proj.weight", {inter, h}, Kind::kLinear);
    add(prefix + ".down_proj.weight", {h, inter}, Kind::kLinear);
  };
  add("model.embed_tokens.weight", {c.vocab_size, h}, Kind::kEmbed);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    add(p + "input_layernorm.weight", {h}, Kind::kNorm);
    add(p + "post_attention_layernorm.weight", {h}, Kind::kNorm);
    const std::string a = p + "self_attn.";
    if (c.q_lora_rank.has_value()) {
      add(a + "q_a_proj.weight", {*c.q_lora_rank, h}, Kind::kLinear);
      add(a + "q_a_layernorm.weight", {*c.q_lora_rank}, Kind::kNorm);
      add(a + "q_b_proj.weight", {heads * c.qk_head_dim(), *c.q_lora_rank}, Kind::kLinear);
    } else {
      add(a + "q_proj.weight", {heads * c.qk_head_dim(), h}, Kind::kLinear);
    }
    add(a + "kv_a_proj_with_mqa.weight", {c.kv_lora_rank + c.qk_rope_head_dim, h}, Kind::kLinear);
    add(a + "kv_a_layernorm.weight", {c.kv_lora_rank}, Kind::kNorm);
    add(a + "kv_b_proj.weight", {heads * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank},
        Kind::kLinear);
    add(a + "o_proj.weight", {h, heads * c.v_head_dim}, Kind::kLinear);
    if (!c.is_moe_layer(l)) {
      mlp(p + "mlp", c.intermediate_size);
      continue;
    }
    add(p + "mlp.gate.weight", {c.n_routed_experts, h}, Kind::kRouter);
    if (c.topk_method == TopkMethod::kNoauxTc) {
      add(p + "mlp.gate.e_score_correction_bias", {c.n_routed_experts}, Kind::kBias);
    }
    for (int64_t e = 0; e < c.n_routed_experts; ++e) {
      mlp(absl::StrCat(p, "mlp.experts.", e), c.moe_intermediate_size);
    }
    if (c.n_shared_experts > 0) {
      mlp(p + "mlp.shared_experts", c.moe_intermediate_size * c.n_shared_experts);
    }
  }
  add("model.norm.weight", {h}, Kind::kNorm);
  if (!c.tie_word_embeddings) add("lm_head.weight", {c.vocab_size, h}, Kind::kLmHead);
  return out;
}

// --- deterministic values: a pure function of (seed, name, index) -------------------------

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t name_key(uint64_t seed, const std::string& name) {
  uint64_t h = 0xCBF29CE484222325ull;  // FNV-1a
  for (unsigned char ch : name) h = (h ^ ch) * 0x100000001B3ull;
  return splitmix64(seed ^ splitmix64(h));
}

// Element i of a tensor, as an f32 value. Uniform, so scale = half-width.
class ValueGen {
 public:
  ValueGen(uint64_t key, Kind kind, int64_t in_features, float router_std) : key_(key) {
    const float root3 = std::sqrt(3.0f);  // uniform[-a,a] has std a/sqrt(3)
    const float inv_sqrt_in =
        1.0f / std::sqrt(static_cast<float>(std::max<int64_t>(1, in_features)));
    switch (kind) {
      case Kind::kEmbed:
        half_ = root3;
        break;
      case Kind::kLmHead:
        half_ = 3.0f * root3 * inv_sqrt_in;
        break;
      case Kind::kNorm:
        offset_ = 1.0f;
        half_ = 0.1f;
        break;
      case Kind::kLinear:
        half_ = root3 * inv_sqrt_in;
        break;
      case Kind::kRouter:
        half_ = router_std * root3 * inv_sqrt_in;
        break;
      case Kind::kBias:
        half_ = 0.1f;
        break;
    }
  }
  float operator()(int64_t i) const {
    const uint64_t r = splitmix64(key_ + static_cast<uint64_t>(i) * 0xD1B54A32D192ED03ull);
    // 24 random bits -> u in [-1, 1), exact in float.
    const float u = static_cast<float>(static_cast<int64_t>(r >> 40) - (int64_t{1} << 23)) *
                    (1.0f / static_cast<float>(int64_t{1} << 23));
    return offset_ + half_ * u;
  }

 private:
  uint64_t key_;
  float offset_ = 0.0f;
  float half_ = 1.0f;
};

// Fills `out` (dtype kF32 or kBF16) with the values of `gen`. Single-threaded: callers
// parallelise over tensors.
void fill_plain(const ValueGen& gen, Tensor& out) {
  const int64_t n = out.numel();
  if (out.dtype() == DType::kF32) {
    float* p = out.data<float>();
    for (int64_t i = 0; i < n; ++i) p[i] = gen(i);
  } else {
    uint16_t* p = out.data<uint16_t>();
    for (int64_t i = 0; i < n; ++i) p[i] = f32_to_bf16(gen(i));
  }
}

// Block-quantises `gen`'s [rows, cols] values to fp8 e4m3 per 128x128 block (q =
// round(w/scale), scale_inv = scale), in DeepSeek-V3's layout. The scale is amax/448 rounded
// up to a power of two (the UE8M0 scales of DeepSeek-V3.1), so every dequantised value
// fp8 * scale is exact in bf16: the bf16 twin then holds exactly the fp8 model's values.
// With `twin` set, writes bf16(fp8 * scale_inv) into `out` (BF16) instead and leaves
// `scale_inv` untouched. Single-threaded.
void fill_fp8(const ValueGen& gen, int64_t rows, int64_t cols, bool twin, Tensor& out,
              Tensor& scale_inv) {
  const int64_t row_blocks = (rows + kFp8Block - 1) / kFp8Block;
  const int64_t col_blocks = (cols + kFp8Block - 1) / kFp8Block;
  std::vector<float> strip;  // [<=128, cols]
  std::vector<float> amax(col_blocks);
  for (int64_t rb = 0; rb < row_blocks; ++rb) {
    const int64_t r0 = rb * kFp8Block;
    const int64_t nr = std::min(kFp8Block, rows - r0);
    strip.resize(nr * cols);
    std::fill(amax.begin(), amax.end(), 0.0f);
    for (int64_t r = 0; r < nr; ++r) {
      for (int64_t j = 0; j < cols; ++j) {
        const float v = gen((r0 + r) * cols + j);
        strip[r * cols + j] = v;
        float& m = amax[j / kFp8Block];
        m = std::max(m, std::fabs(v));
      }
    }
    for (int64_t cb = 0; cb < col_blocks; ++cb) {
      const float scale =
            amax[cb] > 0.0f ? std::exp2(std::ceil(std::log2(amax[cb] / 448.0f))) : 1.0f;
      if (!twin) scale_inv.data<float>()[rb * col_blocks + cb] = scale;
      const int64_t c0 = cb * kFp8Block;
      const int64_t c1 = std::min(cols, c0 + kFp8Block);
      for (int64_t r = 0; r < nr; ++r) {
        for (int64_t j = c0; j < c1; ++j) {
          const uint8_t q = f32_to_fp8e4m3(strip[r * cols + j] / scale);
          const int64_t idx = (r0 + r) * cols + j;
          if (twin) {
            out.data<uint16_t>()[idx] = f32_to_bf16(fp8e4m3_to_f32(q) * scale);
          } else {
            out.data<uint8_t>()[idx] = q;
          }
        }
      }
    }
  }
}

Status write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) return absl::InternalError(absl::StrCat("cannot create ", path));
  f.write(text.data(), static_cast<std::streamsize>(text.size()));
  f.close();
  if (!f) return absl::InternalError(absl::StrCat("write failed: ", path));
  return absl::OkStatus();
}

std::string generation_config_json(const ModelConfig& c) {
  nlohmann::ordered_json g;
  g["_from_model_config"] = true;
  g["bos_token_id"] = c.bos_token_id.value_or(0);
  g["eos_token_id"] = c.eos_token_id.value_or(1);
  g["do_sample"] = true;
  // DeepSeek's recommended sampling; vLLM reads temperature and top_p from here.
  g["temperature"] = 0.6;
  g["top_p"] = 0.95;
  return g.dump(2);
}

void set_arch(ModelConfig& c, bool v3) {
  c.arch = v3 ? Architecture::kDeepseekV3 : Architecture::kDeepseekV2;
  c.model_type = v3 ? "deepseek_v3" : "deepseek_v2";
  c.rope_scaling.yarn = true;
  c.rope_scaling.factor = 40.0;
  c.rope_scaling.original_max_position_embeddings = 4096;
  c.rope_scaling.beta_fast = 32.0;
  c.rope_scaling.beta_slow = 1.0;
  c.rope_scaling.mscale = v3 ? 1.0 : 0.707;
  c.rope_scaling.mscale_all_dim = v3 ? 1.0 : 0.707;
  c.rope_theta = 10000.0;
  c.bos_token_id = 0;
  c.eos_token_id = 1;
  c.tie_word_embeddings = false;
  c.moe_layer_freq = 1;
  c.torch_dtype = "bfloat16";
  if (v3) {
    c.scoring_func = ScoringFunc::kSigmoid;
    c.topk_method = TopkMethod::kNoauxTc;
    c.norm_topk_prob = true;
    c.routed_scaling_factor = 2.5;
  } else {
    c.scoring_func = ScoringFunc::kSoftmax;
    c.topk_method = TopkMethod::kGreedy;
    c.norm_topk_prob = false;
    c.routed_scaling_factor = 1.0;
    c.q_lora_rank.reset();
  }
}

}  // namespace

StatusOr<ModelConfig> preset_config(const std::string& arch, const std::string& preset) {
  if (!arch.empty() && arch != "deepseek_v3" && arch != "deepseek_v2") {
    return absl::InvalidArgumentError(
        absl::StrCat("gen-model: unknown arch '", arch, "' (expected deepseek_v3 or deepseek_v2)"));
  }
  std::string fixed_arch;  // presets that exist for one architecture only
  if (preset == "v2-lite-4l") fixed_arch = "deepseek_v2";
  if (preset == "v3-4l") fixed_arch = "deepseek_v3";
  if (!fixed_arch.empty() && !arch.empty() && arch != fixed_arch) {
    return absl::InvalidArgumentError(absl::StrCat("gen-model: preset '", preset, "' is a ",
                                                   fixed_arch, " model; drop --arch ", arch,
                                                   " or pass --arch ", fixed_arch));
  }
  const std::string a = !fixed_arch.empty() ? fixed_arch : (arch.empty() ? "deepseek_v3" : arch);
  const bool v3 = a == "deepseek_v3";
  ModelConfig c;
  if (preset == "tiny") {
    set_arch(c, v3);
    c.vocab_size = 512;
    c.hidden_size = 64;
    c.num_attention_heads = 4;
    if (v3) c.q_lora_rank = 32;
    c.kv_lora_rank = 32;
    c.qk_nope_head_dim = 16;
    c.qk_rope_head_dim = 8;
    c.v_head_dim = 16;
    c.num_hidden_layers = 3;
    c.first_k_dense_replace = 1;
    c.intermediate_size = 128;
    c.moe_intermediate_size = 32;
    c.n_routed_experts = 16;
    c.num_experts_per_tok = 4;
    c.n_group = 4;
    c.topk_group = 2;
    c.n_shared_experts = v3 ? 1 : 2;
    if (!v3) {  // exercise DeepSeek-V2-236B's group-limited routing with a scale
      c.topk_method = TopkMethod::kGroupLimitedGreedy;
      c.routed_scaling_factor = 2.0;
    }
    c.max_position_embeddings = 2048;
    c.rms_norm_eps = 1e-6;
  } else if (preset == "small") {
    set_arch(c, v3);
    c.vocab_size = 2048;
    c.hidden_size = 256;
    c.num_attention_heads = 8;
    if (v3) c.q_lora_rank = 128;
    c.kv_lora_rank = 128;
    c.qk_nope_head_dim = 32;
    c.qk_rope_head_dim = 16;
    c.v_head_dim = 32;
    c.num_hidden_layers = 4;
    c.first_k_dense_replace = 1;
    c.intermediate_size = 512;
    c.moe_intermediate_size = 128;
    c.n_routed_experts = 64;
    c.num_experts_per_tok = 6;
    c.n_group = v3 ? 8 : 1;
    c.topk_group = v3 ? 4 : 1;
    c.n_shared_experts = v3 ? 1 : 2;
    c.max_position_embeddings = 4096;
    c.rms_norm_eps = 1e-6;
  } else if (preset == "v2-lite-4l") {
    set_arch(c, false);
    c.vocab_size = 102400;
    c.hidden_size = 2048;
    c.num_attention_heads = 16;
    c.kv_lora_rank = 512;
    c.qk_nope_head_dim = 128;
    c.qk_rope_head_dim = 64;
    c.v_head_dim = 128;
    c.num_hidden_layers = 4;
    c.first_k_dense_replace = 1;
    c.intermediate_size = 10944;
    c.moe_intermediate_size = 1408;
    c.n_routed_experts = 64;
    c.num_experts_per_tok = 6;
    c.n_group = 1;
    c.topk_group = 1;
    c.n_shared_experts = 2;
    c.max_position_embeddings = 163840;
    c.rms_norm_eps = 1e-6;
  } else if (preset == "v3-4l") {
    set_arch(c, true);
    c.vocab_size = 32000;
    c.hidden_size = 1024;
    c.num_attention_heads = 8;
    c.q_lora_rank = 384;
    c.kv_lora_rank = 256;
    c.qk_nope_head_dim = 64;
    c.qk_rope_head_dim = 32;
    c.v_head_dim = 64;
    c.num_hidden_layers = 4;
    c.first_k_dense_replace = 1;
    c.intermediate_size = 2048;
    c.moe_intermediate_size = 256;
    c.n_routed_experts = 256;
    c.num_experts_per_tok = 8;
    c.n_group = 8;
    c.topk_group = 4;
    c.n_shared_experts = 1;
    c.max_position_embeddings = 163840;
    c.rms_norm_eps = 1e-6;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "gen-model: unknown preset '", preset, "' (expected tiny, small, v2-lite-4l or v3-4l)"));
  }
  return c;
}

std::vector<GenTensorSpec> checkpoint_tensor_specs(const ModelConfig& c, DType dtype) {
  std::vector<GenTensorSpec> out;
  for (Spec& s : build_specs(c, dtype)) out.push_back(std::move(s.t));
  return out;
}

Status generate_model(const std::string& out_dir, const GenModelOptions& opts,
                      const GenProgress& progress) {
  MS_ASSIGN_OR_RETURN(ModelConfig c, preset_config(opts.arch, opts.preset));
  return generate_model_from_config(out_dir, c, opts, progress);
}

Status generate_model_from_config(const std::string& out_dir, const ModelConfig& config,
                                  const GenModelOptions& opts, const GenProgress& progress) {
  if (opts.dtype != DType::kF32 && opts.dtype != DType::kBF16 && opts.dtype != DType::kF8E4M3) {
    return absl::InvalidArgumentError(absl::StrCat("gen-model: dtype ",
                                                   std::string(dtype_name(opts.dtype)),
                                                   " is not supported (F32, BF16, F8_E4M3)"));
  }
  if (opts.dequantized_twin && opts.dtype != DType::kF8E4M3) {
    return absl::InvalidArgumentError(
        "gen-model: dequantized_twin needs dtype F8_E4M3 (it is the fp8 model's BF16 twin)");
  }
  if (opts.num_shards < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("gen-model: num_shards must be >= 1, got ", opts.num_shards));
  }
  const bool fp8 = opts.dtype == DType::kF8E4M3;
  const bool twin = opts.dequantized_twin;
  ModelConfig c = config;
  c.torch_dtype = opts.dtype == DType::kF32 ? "float32" : "bfloat16";
  c.fp8_block_quant = fp8 && !twin;
  c.fp8_block_n = kFp8Block;
  c.fp8_block_k = kFp8Block;
  c.bos_token_id = c.bos_token_id.value_or(0);
  c.eos_token_id = c.eos_token_id.value_or(1);
  if (c.vocab_size < kGenTokenizerMinVocab) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "gen-model: vocab_size %d is too small for the generated tokenizer (min %d)", c.vocab_size,
        kGenTokenizerMinVocab));
  }
  // Validates the config the same way loading it back will.
  const std::string config_json = model_config_to_json(c);
  MS_RETURN_IF_ERROR(parse_model_config(config_json, "generated config.json").status());

  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("gen-model: cannot create ", out_dir, ": ", ec.message()));
  }

  const std::vector<Spec> specs = build_specs(c, opts.dtype);
  const int64_t num_tensors = static_cast<int64_t>(specs.size());
  std::vector<Tensor> weights(num_tensors);
  std::vector<Tensor> scales(num_tensors);  // F32 scale_inv of fp8 tensors (not in twins)
  for (int64_t i = 0; i < num_tensors; ++i) {
    const GenTensorSpec& t = specs[i].t;
    weights[i] = Tensor::empty(t.fp8_scale && twin ? DType::kBF16 : t.dtype, t.shape);
    if (t.fp8_scale && !twin) {
      scales[i] = Tensor::empty(DType::kF32, {(t.shape[0] + kFp8Block - 1) / kFp8Block,
                                              (t.shape[1] + kFp8Block - 1) / kFp8Block});
    }
  }
  // One tensor per task, largest first: thousands of expert tensors balance the threads
  // without a parallel region (and its barrier) per tensor.
  std::vector<int64_t> order(num_tensors);
  for (int64_t i = 0; i < num_tensors; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return weights[a].numel() > weights[b].numel(); });
  std::atomic<size_t> done{0};
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t j = 0; j < num_tensors; ++j) {
    const int64_t i = order[j];
    const Spec& s = specs[i];
    const int64_t in_features = s.t.shape.size() == 2 ? s.t.shape[1] : s.t.shape[0];
    const ValueGen gen(name_key(opts.seed, s.t.name), s.kind, in_features, s.router_std);
    if (s.t.fp8_scale) {
      fill_fp8(gen, s.t.shape[0], s.t.shape[1], twin, weights[i], scales[i]);
    } else {
      fill_plain(gen, weights[i]);
    }
    const size_t finished = done.fetch_add(1) + 1;
    if (progress && omp_get_thread_num() == 0) progress(finished, specs.size());
  }
  if (progress) progress(specs.size(), specs.size());
  CheckpointWriter writer;
  for (int64_t i = 0; i < num_tensors; ++i) {
    writer.add(specs[i].t.name, std::move(weights[i]));
    if (specs[i].t.fp8_scale && !twin) {
      writer.add(specs[i].t.name + "_scale_inv", std::move(scales[i]));
    }
  }
  MS_RETURN_IF_ERROR(writer.write(out_dir, opts.num_shards));
  MS_RETURN_IF_ERROR(write_file(out_dir + "/config.json", config_json));
  MS_RETURN_IF_ERROR(write_file(out_dir + "/generation_config.json", generation_config_json(c)));
  return write_generated_tokenizer(out_dir, c.vocab_size, c.max_position_embeddings);
}

}  // namespace moeserve
