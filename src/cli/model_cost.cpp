#include "cli/model_cost.h"

#include <cmath>

namespace moeserve {
namespace {

// Values in the weights used per token by layer `l` (attention + MLP/MoE active part), and the
// kv_b up-projection, which prefill applies once per context token.
double attn_weights(const ModelConfig& c) {
  const double H = c.hidden_size, nh = c.num_attention_heads, dqk = c.qk_head_dim();
  const double L = c.kv_lora_rank, R = c.qk_rope_head_dim, dv = c.v_head_dim;
  double q = c.q_lora_rank ? H * *c.q_lora_rank + *c.q_lora_rank * nh * dqk : H * nh * dqk;
  return q + H * (L + R) + L * nh * (c.qk_nope_head_dim + dv) + nh * dv * H;
}

double mlp_weights(const ModelConfig& c, int64_t l, bool active_only) {
  const double H = c.hidden_size;
  if (!c.is_moe_layer(l)) return 3.0 * H * c.intermediate_size;
  const double per_expert = 3.0 * H * c.moe_intermediate_size;
  const double routed = active_only ? c.num_experts_per_tok : c.n_routed_experts;
  return H * c.n_routed_experts + per_expert * (routed + c.n_shared_experts);
}

}  // namespace

double prefill_flops(const ModelConfig& c, int64_t n) {
  const double P = static_cast<double>(n);
  const double nh = c.num_attention_heads, dqk = c.qk_head_dim(), dv = c.v_head_dim;
  double f = 0;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    f += 2.0 * P * (attn_weights(c) + mlp_weights(c, l, true));
    f += 2.0 * nh * (dqk + dv) * P * (P + 1) / 2.0;  // causal QK^T and PV
  }
  return f + 2.0 * c.hidden_size * c.vocab_size;
}

double decode_bytes(const ModelConfig& c, int64_t context, double wb) {
  double values = 0;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    values += attn_weights(c) + mlp_weights(c, l, true);
  }
  values += static_cast<double>(c.hidden_size) * c.vocab_size;  // LM head
  values += c.hidden_size;                                        // one embedding row
  double bytes = values * wb;
  bytes += 4.0 * static_cast<double>(context + 1) * (c.kv_lora_rank + c.qk_rope_head_dim) *
           static_cast<double>(c.num_hidden_layers);
  return bytes;
}

double expected_experts_touched(const ModelConfig& c, int64_t batch) {
  const double E = static_cast<double>(c.n_routed_experts);
  if (E <= 0) return 0;
  const double k = static_cast<double>(c.num_experts_per_tok);
  return E * (1.0 - std::pow(1.0 - k / E, static_cast<double>(batch)));
}

double decode_token_flops(const ModelConfig& c, int64_t context) {
  const double ctx = static_cast<double>(context + 1);
  double f = 0;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    f += 2.0 * (attn_weights(c) + mlp_weights(c, l, true));
    f += 4.0 * c.num_attention_heads * (c.kv_lora_rank + c.qk_rope_head_dim) * ctx;
  }
  return f + 2.0 * static_cast<double>(c.hidden_size) * c.vocab_size;
}

double decode_step_bytes(const ModelConfig& c, int64_t batch, int64_t context, double wb) {
  const double H = c.hidden_size;
  const double touched = expected_experts_touched(c, batch);
  double values = 0;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    values += attn_weights(c);
    if (!c.is_moe_layer(l)) {
      values += 3.0 * H * c.intermediate_size;
    } else {
      values += H * c.n_routed_experts +
                3.0 * H * c.moe_intermediate_size * (touched + c.n_shared_experts);
    }
  }
  values += H * c.vocab_size + H * static_cast<double>(batch);
  double bytes = values * wb;
  bytes += 4.0 * static_cast<double>(batch) * static_cast<double>(context + 1) *
           (c.kv_lora_rank + c.qk_rope_head_dim) * static_cast<double>(c.num_hidden_layers);
  return bytes;
}

}  // namespace moeserve
