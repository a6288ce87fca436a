// Random Hugging Face DeepSeek-V2/V3 checkpoints: config.json, safetensors (one file or
// shards + index), generation_config.json, tokenizer.json and tokenizer_config.json, laid out
// exactly as the published models are, so every loader path can run without a real model.
//
// Values are a pure function of (seed, tensor name, element index): the f32, bf16 and fp8
// checkpoints of one seed are roundings of the same f32 values, whatever the shard count.
//
// Presets (arch "" means the preset's own architecture; a contradicting arch is an error):
//   tiny        vocab 512, hidden 64, 4 heads, kv_lora 32, nope/rope/v 16/8/16, 3 layers
//               (first dense), 16 experts of 32, top-4. deepseek_v3: q_lora 32, 1 shared,
//               sigmoid + noaux_tc, 4 groups / top-2 groups, rsf 2.5, norm_topk_prob.
//               deepseek_v2: q_proj, 2 shared, softmax + group_limited_greedy with 4 groups /
//               top-2 groups, norm_topk_prob false, rsf 2.0 (the V2-236B routing path).
//               Default arch deepseek_v3.
//   small       hidden 256, 8 heads, 4 layers, 64 experts top-6, vocab 2048. deepseek_v3:
//               8 groups / top-4, noaux_tc; deepseek_v2: greedy softmax (the V2-Lite path).
//               Default arch deepseek_v3.
//   v2-lite-4l  DeepSeek-V2-Lite's shapes and routing with 4 layers (deepseek_v2 only).
//   v3-4l       DeepSeek-V3's routing (256 experts, 8 groups) at hidden 1024, 4 layers
//               (deepseek_v3 only).
// All presets use YaRN rope scaling (factor 40, original 4096, beta 32/1; mscale 1.0 for v3,
// 0.707 for v2), bos id 0, eos id 1.
//
// Thread-safety: the functions are reentrant; generate_model uses OpenMP internally.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "model/config.h"

namespace moeserve {

struct GenModelOptions {
  std::string arch;             // "deepseek_v3" | "deepseek_v2" | "" (the preset's own)
  std::string preset = "tiny";  // "tiny" | "small" | "v2-lite-4l" | "v3-4l"
  // kF32, kBF16, or kF8E4M3 (DeepSeek-V3's layout: attention/MLP/expert Linear weights are
  // F8_E4M3 in 128x128 blocks with F32 `<name>_scale_inv`; embeddings, norms, the router
  // and lm_head stay BF16; e_score_correction_bias is F32 in every mode).
  DType dtype = DType::kBF16;
  uint64_t seed = 0;
  int num_shards = 1;
  // Only with dtype kF8E4M3: write instead the BF16 "twin" of the fp8 model, whose Linear
  // weights are bf16(fp8 value * scale_inv) and whose other tensors are the fp8 model's.
  bool dequantized_twin = false;
};

// (tensors generated, total tensors); called from the calling thread, not necessarily for
// every count; the last call is (total, total).
using GenProgress = std::function<void(size_t, size_t)>;

// The ModelConfig of a preset (dtype fields left at bfloat16 / no quantisation).
StatusOr<ModelConfig> preset_config(const std::string& arch, const std::string& preset);

// One tensor of the checkpoint, as generate_model writes it.
struct GenTensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  DType dtype;
  bool fp8_scale = false;  // an F32 `<name>_scale_inv` accompanies it
};
// The tensors a config's checkpoint holds for a storage dtype (HF names, HF shapes).
std::vector<GenTensorSpec> checkpoint_tensor_specs(const ModelConfig& c, DType dtype);

// Writes a whole model directory (created if missing) for a preset.
Status generate_model(const std::string& out_dir, const GenModelOptions& opts,
                      const GenProgress& progress = {});
// Same for an explicit config (opts.arch / opts.preset are ignored).
Status generate_model_from_config(const std::string& out_dir, const ModelConfig& config,
                                  const GenModelOptions& opts, const GenProgress& progress = {});

}  // namespace moeserve
