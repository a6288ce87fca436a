#include "model/mla_attention.h"

#include <cstring>
#include <span>

#include "core/parallel.h"
#include "kernels/attention.h"
#include "kernels/ops.h"

namespace moeserve {

StatusOr<MlaAttention> MlaAttention::load(const WeightLoader& w, const ModelConfig& cfg,
                                          int64_t layer, const RopeTable* rope) {
  MlaAttention a;
  a.hidden_ = cfg.hidden_size;
  a.heads_ = cfg.num_attention_heads;
  a.nope_ = cfg.qk_nope_head_dim;
  a.rope_dim_ = cfg.qk_rope_head_dim;
  a.v_dim_ = cfg.v_head_dim;
  a.latent_ = cfg.kv_lora_rank;
  a.eps_ = static_cast<float>(cfg.rms_norm_eps);
  a.scale_ = static_cast<float>(cfg.softmax_scale());
  a.rope_ = rope;
  const std::string p = absl::StrCat("model.layers.", layer, ".self_attn.");
  const int64_t dqk = a.nope_ + a.rope_dim_;
  if (cfg.q_lora_rank) {
    const int64_t r = *cfg.q_lora_rank;
    MS_ASSIGN_OR_RETURN(Tensor qa, w.linear(p + "q_a_proj.weight", r, a.hidden_));
    MS_ASSIGN_OR_RETURN(a.q_a_proj_, Linear::create(qa));
    MS_ASSIGN_OR_RETURN(a.q_a_norm_, w.vector_f32(p + "q_a_layernorm.weight", r));
    MS_ASSIGN_OR_RETURN(Tensor qb, w.linear(p + "q_b_proj.weight", a.heads_ * dqk, r));
    MS_ASSIGN_OR_RETURN(a.q_b_proj_, Linear::create(qb));
  } else {
    MS_ASSIGN_OR_RETURN(Tensor q, w.linear(p + "q_proj.weight", a.heads_ * dqk, a.hidden_));
    MS_ASSIGN_OR_RETURN(Linear ql, Linear::create(q));
    a.q_proj_ = std::move(ql);
  }
  MS_ASSIGN_OR_RETURN(Tensor kva,
                      w.linear(p + "kv_a_proj_with_mqa.weight", a.latent_ + a.rope_dim_, a.hidden_));
  MS_ASSIGN_OR_RETURN(a.kv_a_proj_, Linear::create(kva));
  MS_ASSIGN_OR_RETURN(a.kv_a_norm_, w.vector_f32(p + "kv_a_layernorm.weight", a.latent_));
  MS_ASSIGN_OR_RETURN(Tensor kvb,
                      w.linear(p + "kv_b_proj.weight", a.heads_ * (a.nope_ + a.v_dim_), a.latent_));
  MS_ASSIGN_OR_RETURN(a.kv_b_proj_, Linear::create(kvb));
  MS_ASSIGN_OR_RETURN(Tensor o, w.linear(p + "o_proj.weight", a.hidden_, a.heads_ * a.v_dim_));
  MS_ASSIGN_OR_RETURN(a.o_proj_, Linear::create(o));

  // Absorption weights. kv_b rows for head h: [nope rows of W_UK | v rows of W_UV], each L wide.
  const size_t esz = dtype_size(kvb.dtype());
  for (int64_t h = 0; h < a.heads_; ++h) {
    const int64_t row0 = h * (a.nope_ + a.v_dim_);
    Tensor uk_t = Tensor::empty(kvb.dtype(), {a.latent_, a.nope_});  // [L, nope]
    const char* src = static_cast<const char*>(kvb.raw());
    char* dst = static_cast<char*>(uk_t.raw());
    for (int64_t n = 0; n < a.nope_; ++n) {
      for (int64_t l = 0; l < a.latent_; ++l) {
        std::memcpy(dst + (l * a.nope_ + n) * esz, src + ((row0 + n) * a.latent_ + l) * esz, esz);
      }
    }
    MS_ASSIGN_OR_RETURN(Linear uk, Linear::create(uk_t));
    a.w_uk_t_.push_back(std::move(uk));
    MS_ASSIGN_OR_RETURN(Linear uv,
                        Linear::create(kvb.slice_rows(row0 + a.nope_, row0 + a.nope_ + a.v_dim_)));
    a.w_uv_.push_back(std::move(uv));
  }
  return a;
}

void MlaAttention::write_cache(const float* entries, const StepPlan& plan, const LatentCache& cache,
                               int64_t layer) const {
  const int64_t E = latent_ + rope_dim_;
  float* base = cache.layer_base(layer);
  for (int64_t t = 0; t < plan.num_tokens; ++t) {
    std::memcpy(base + plan.slots[t] * cache.entry_dim(), entries + t * E, E * sizeof(float));
  }
}

void MlaAttention::prefill_chunk(const float* q, const SeqChunk& s, const StepPlan& plan,
                                 const StepPlan::Prefill& chunk, const LatentCache& cache,
                                 int64_t layer, Arena& scratch, float* attn) const {
  const int64_t E = latent_ + rope_dim_, dqk = nope_ + rope_dim_;
  const int64_t S = chunk.num_context;
  Arena::Scope scope(scratch);
  const float* base = cache.layer_base(layer);
  const int64_t* slots = plan.context_slots.data() + chunk.context_begin;
  std::span<float> ctx = scratch.alloc<float>(S * E);  // [S, L + R] cached entries
  for (int64_t p = 0; p < S; ++p) {
    std::memcpy(ctx.data() + p * E, base + slots[p] * cache.entry_dim(), E * sizeof(float));
  }
  const int64_t kvw = heads_ * (nope_ + v_dim_);
  std::span<float> kv = scratch.alloc<float>(S * kvw);  // [S, heads, nope + v]
  kv_b_proj_.forward(ctx.data(), S, kv.data(), E, kvw);
  std::span<float> k = scratch.alloc<float>(S * heads_ * dqk);     // [S, heads, dqk]
  std::span<float> v = scratch.alloc<float>(S * heads_ * v_dim_);  // [S, heads, v]
  parallel_for(
      S,
      [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
          for (int64_t h = 0; h < heads_; ++h) {
            const float* src = kv.data() + t * kvw + h * (nope_ + v_dim_);
            float* kd = k.data() + (t * heads_ + h) * dqk;
            std::memcpy(kd, src, nope_ * sizeof(float));
            std::memcpy(kd + nope_, ctx.data() + t * E + latent_, rope_dim_ * sizeof(float));
            std::memcpy(v.data() + (t * heads_ + h) * v_dim_, src + nope_, v_dim_ * sizeof(float));
          }
        }
      },
      8);
  MhaParams p;
  p.q = q + s.token_begin * heads_ * dqk;
  p.q_stride = heads_ * dqk;
  p.k = k.data();
  p.k_stride = heads_ * dqk;
  p.v = v.data();
  p.v_stride = heads_ * v_dim_;
  p.out = attn + s.token_begin * heads_ * v_dim_;
  p.out_stride = heads_ * v_dim_;
  p.num_q = s.num_tokens;
  p.num_kv = S;
  p.heads = heads_;
  p.dqk = dqk;
  p.dv = v_dim_;
  p.scale = scale_;
  mha_prefill(p);
}

void MlaAttention::decode_tokens(const float* q, const ForwardBatch& batch, const StepPlan& plan,
                                 const LatentCache& cache, int64_t layer, Arena& scratch,
                                 float* attn) const {
  const int64_t n = static_cast<int64_t>(plan.decode_rows.size()), dqk = nope_ + rope_dim_;
  Arena::Scope scope(scratch);
  // Gather the decode rows' queries: [n, heads, dqk].
  std::span<float> qd = scratch.alloc<float>(n * heads_ * dqk);
  for (int64_t i = 0; i < n; ++i) {
    std::memcpy(qd.data() + i * heads_ * dqk, q + plan.decode_rows[i] * heads_ * dqk,
                heads_ * dqk * sizeof(float));
  }
  // q_lat[i, h, :] = q_nope[i, h, :] · W_UK[h]   -> [n, heads, L]
  std::span<float> q_lat = scratch.alloc<float>(n * heads_ * latent_);
  for (int64_t h = 0; h < heads_; ++h) {
    w_uk_t_[h].forward(qd.data() + h * dqk, n, q_lat.data() + h * latent_, heads_ * dqk,
                       heads_ * latent_);
  }
  std::span<float> q_pe = scratch.alloc<float>(n * heads_ * rope_dim_);  // [n, heads, R]
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t h = 0; h < heads_; ++h) {
      std::memcpy(q_pe.data() + (i * heads_ + h) * rope_dim_,
                  qd.data() + (i * heads_ + h) * dqk + nope_, rope_dim_ * sizeof(float));
    }
  }
  std::span<float> o_lat = scratch.alloc<float>(n * heads_ * latent_);  // [n, heads, L]
  for (int64_t i = 0; i < n; ++i) {
    const SeqChunk& s = batch.seqs[plan.decode_seqs[i]];
    MlaDecodeParams p;
    p.q_lat = q_lat.data() + i * heads_ * latent_;
    p.q_pe = q_pe.data() + i * heads_ * rope_dim_;
    p.cache = cache.layer_base(layer);
    p.block_table = batch.block_tables.data() + s.block_table_begin;
    p.block_size = cache.block_size();
    p.block_stride = cache.block_stride();
    p.entry_stride = cache.entry_dim();
    p.num_kv = s.num_computed + 1;
    p.heads = heads_;
    p.latent_dim = latent_;
    p.rope_dim = rope_dim_;
    p.scale = scale_;
    p.out_lat = o_lat.data() + i * heads_ * latent_;
    mla_decode(p);
  }
  // attn[row, h, :] = W_UV[h] · o_lat[i, h, :]
  std::span<float> od = scratch.alloc<float>(n * heads_ * v_dim_);
  for (int64_t h = 0; h < heads_; ++h) {
    w_uv_[h].forward(o_lat.data() + h * latent_, n, od.data() + h * v_dim_, heads_ * latent_,
                     heads_ * v_dim_);
  }
  for (int64_t i = 0; i < n; ++i) {
    std::memcpy(attn + plan.decode_rows[i] * heads_ * v_dim_, od.data() + i * heads_ * v_dim_,
                heads_ * v_dim_ * sizeof(float));
  }
}

void MlaAttention::forward(const float* x, const ForwardBatch& batch, const StepPlan& plan,
                           const LatentCache& cache, int64_t layer, Arena& scratch,
                           float* out) const {
  const int64_t T = plan.num_tokens, dqk = nope_ + rope_dim_, E = latent_ + rope_dim_;
  Arena::Scope scope(scratch);
  std::span<float> q = scratch.alloc<float>(T * heads_ * dqk);  // [T, heads, dqk]
  if (q_proj_) {
    q_proj_->forward(x, T, q.data());
  } else {
    const int64_t r = q_a_proj_.out_features();
    std::span<float> qa = scratch.alloc<float>(T * r);  // [T, q_lora]
    q_a_proj_.forward(x, T, qa.data());
    rmsnorm(qa.data(), r, q_a_norm_.data<float>(), qa.data(), r, T, r, eps_);
    q_b_proj_.forward(qa.data(), T, q.data());
  }
  std::span<float> entries = scratch.alloc<float>(T * E);  // [T, L + R]
  kv_a_proj_.forward(x, T, entries.data());
  rmsnorm(entries.data(), E, kv_a_norm_.data<float>(), entries.data(), E, T, latent_, eps_);

  rope_->apply(q.data() + nope_, T, heads_ * dqk, heads_, dqk, plan.positions.data());
  rope_->apply(entries.data() + latent_, T, E, 1, E, plan.positions.data());
  write_cache(entries.data(), plan, cache, layer);

  std::span<float> attn = scratch.alloc<float>(T * heads_ * v_dim_);  // [T, heads, v]
  for (const StepPlan::Prefill& c : plan.prefills) {
    prefill_chunk(q.data(), batch.seqs[c.seq], plan, c, cache, layer, scratch, attn.data());
  }
  if (!plan.decode_rows.empty())
    decode_tokens(q.data(), batch, plan, cache, layer, scratch, attn.data());
  o_proj_.forward(attn.data(), T, out);
}

}  // namespace moeserve
