// MLA attention kernels over f32. Prefill uses the full multi-head form; decode uses the
// absorbed form over the paged latent cache (normalised kv latent + roped k_pe per token).
// Each has a scalar reference (_ref).
// Thread-safety: stateless. The fast versions split work over OpenMP threads (heads and query
// blocks for prefill, key ranges for decode) and run serially when called inside a parallel
// region; inner products go through oneDNN's sgemm.
#pragma once

#include <cstdint>

namespace moeserve {

// Causal multi-head attention for one sequence chunk.
// q: [T, H, dqk] (row stride q_stride per token), k: [S, H, dqk], v: [S, H, dv], with the
// chunk's tokens being the last T of the S keys (query t sees keys [0, S-T+t]).
// out: [T, H, dv] (row stride out_stride).
struct MhaParams {
  const float* q;
  int64_t q_stride;
  const float* k;
  int64_t k_stride;
  const float* v;
  int64_t v_stride;
  float* out;
  int64_t out_stride;
  int64_t num_q;   // T
  int64_t num_kv;  // S >= T
  int64_t heads;
  int64_t dqk;
  int64_t dv;
  float scale;
};
void mha_prefill(const MhaParams& p);
void mha_prefill_ref(const MhaParams& p);

// Absorbed-form decode for one query token of one sequence.
// q_lat: [H, L] (q_nope already multiplied by W_UK), q_pe: [H, R] (roped).
// The cache is paged: block b of the sequence is cache + block_table[b]*block_stride; inside a
// block, token j's entry is at j*entry_stride: [L latent | R k_pe].
// out_lat: [H, L] = softmax(scale * (q_lat·c + q_pe·k_pe)) · c over the first num_kv tokens
// (zeros when num_kv == 0).
struct MlaDecodeParams {
  const float* q_lat;
  const float* q_pe;
  const float* cache;
  const int32_t* block_table;
  int64_t block_size;
  int64_t block_stride;  // elements per block
  int64_t entry_stride;  // elements per token entry (>= L + R)
  int64_t num_kv;
  int64_t heads;
  int64_t latent_dim;  // L
  int64_t rope_dim;    // R
  float scale;
  float* out_lat;
};
void mla_decode(const MlaDecodeParams& p);
void mla_decode_ref(const MlaDecodeParams& p);

}  // namespace moeserve
