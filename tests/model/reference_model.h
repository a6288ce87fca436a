// A plain float64, scalar, single-threaded reference of the whole DeepSeek-V2/V3 forward pass
// (Hugging Face modeling_deepseek.py semantics; vLLM's where they differ), written from the
// spec independently of the serving runtime, so tests can check the fast path against it.
// No kernels/ code, no OpenMP, no shortcuts: every weight is dequantised to double at load.
// Memory: 8 bytes per parameter — meant for the tiny/small generated models.
//
// Conventions fixed here (the runtime must agree):
//  - RoPE rotates interleaved pairs (x[2i], x[2i+1]) by pos*inv_freq[i], both multiplied by
//    the YaRN attention factor (HF's permuted layout gives the same dot products).
//  - Routing: noaux_tc masks non-selected groups with -inf (vLLM; HF fills 0.0);
//    routed_scaling_factor multiplies the weights always, after the optional
//    renormalisation (vLLM; HF-V2 scales only when not renormalising — no shipped V2 config
//    has both). Ties in every top-k (groups and experts) go to the lower index.
//
// Thread-safety: a loaded ReferenceModel is immutable; forward() may run concurrently.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/config.h"
#include "moe/moe_layer.h"

namespace moeserve {
namespace reference {

// yarn_get_mscale: scale <= 1 ? 1 : 0.1 * m * ln(scale) + 1.
double yarn_mscale(double scale, double m);

// inv_freq [qk_rope_head_dim / 2] and the cos/sin factor of HF's YarnRotaryEmbedding
// (plain RoPE when rope_scaling is not yarn: theta^(-2i/dim), factor 1).
struct RopeTable {
  std::vector<double> inv_freq;
  double attention_factor = 1.0;
};
RopeTable rope_table(const ModelConfig& c);

// qk_head_dim^-0.5, times yarn_mscale(factor, mscale_all_dim)^2 under yarn when
// mscale_all_dim != 0.
double softmax_scale(const ModelConfig& c);

// Rotates `v` ([qk_rope_head_dim], interleaved pairs) in place for position `pos`.
void apply_rope(const RopeTable& t, int64_t pos, double* v);

// Softmax over all experts, or elementwise sigmoid.
std::vector<double> score_experts(const std::vector<double>& logits, ScoringFunc f);

struct Routing {
  std::vector<int64_t> ids;     // [K], by descending selection value
  std::vector<double> weights;  // [K], final weights (renormalised, scaled)
};
// Top-k selection on already-scored experts (c.topk_method, n_group, topk_group,
// num_experts_per_tok, norm_topk_prob, routed_scaling_factor). `bias` ([E]) is used only by
// noaux_tc (may be empty there: zero bias). Preconditions: scores.size() ==
// c.n_routed_experts, divisible by n_group; K <= experts in the kept groups.
Routing select_experts(const std::vector<double>& scores, const std::vector<double>& bias,
                       const ModelConfig& c);

}  // namespace reference

class ReferenceModel {
 public:
  // Reads config.json and the checkpoint of `dir`; every tensor is checked against the shape
  // the config implies, and dequantised to double (F32, BF16, F16, F8_E4M3 with
  // `<name>_scale_inv` blocks of fp8_block_n x fp8_block_k).
  static StatusOr<ReferenceModel> load(const std::string& dir);

  const ModelConfig& config() const { return config_; }

  // Logits [T][vocab] for every position of one sequence starting at position 0.
  // Precondition: every token is in [0, vocab_size).
  // `routing` (optional) receives, per layer, every position's expert choices and weights
  // ([T, K]; empty for dense layers), for DeepseekModel::forward's replay.
  std::vector<std::vector<double>> forward(const std::vector<int32_t>& tokens,
                                           std::vector<MoeRouting>* routing = nullptr) const;

  struct Matrix {  // row-major [rows, cols]
    int64_t rows = 0;
    int64_t cols = 0;
    std::vector<double> w;
  };
  struct Mlp {
    Matrix gate, up, down;
  };
  struct Layer {
    std::vector<double> input_norm, post_attention_norm;  // [hidden]
    std::optional<Matrix> q_proj;                         // without q_lora
    Matrix q_a, q_b;                                      // with q_lora
    std::vector<double> q_a_norm;                         // [q_lora]
    Matrix kv_a;                                          // [kv_lora + rope, hidden]
    std::vector<double> kv_a_norm;                        // [kv_lora]
    Matrix kv_b;                                          // [H*(nope+v), kv_lora]
    Matrix o;                                             // [hidden, H*v]
    bool moe = false;
    Mlp dense;
    Matrix router;                   // [E, hidden]
    std::vector<double> score_bias;  // [E], noaux_tc only
    std::vector<Mlp> experts;        // [E]
    std::optional<Mlp> shared;       // moe_intermediate * n_shared
  };

 private:
  // x: [T][hidden] normed inputs at positions 0..T-1 -> [T][hidden] attention outputs.
  std::vector<std::vector<double>> attention(const Layer& l,
                                             const std::vector<std::vector<double>>& x) const;
  std::vector<double> moe(const Layer& l, const std::vector<double>& x, MoeRouting* routing) const;

  ModelConfig config_;
  reference::RopeTable rope_;
  double softmax_scale_ = 1.0;
  Matrix embed_;    // [vocab, hidden]
  Matrix lm_head_;  // [vocab, hidden]; a copy of embed_ when tied
  std::vector<double> final_norm_;
  std::vector<Layer> layers_;
};

}  // namespace moeserve
