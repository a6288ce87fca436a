#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/cpu_features.h"
#include "core/parallel.h"
#include "kernels/simd_avx2.h"

namespace moeserve {
namespace {

using DotFn = float (*)(const float*, const float*, int64_t);
// y = beta * y + alpha * x
using ScaleAxpyFn = void (*)(float beta, float alpha, const float* x, float* y, int64_t n);

float dot_scalar(const float* a, const float* b, int64_t n) {
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
  }
  for (; i < n; ++i) s0 += a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
}

void scale_axpy_scalar(float beta, float alpha, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = y[i] * beta + alpha * x[i];
}

MS_TARGET_AVX2 float dot_avx2(const float* a, const float* b, int64_t n) {
  return simd::dot(a, b, n);
}

MS_TARGET_AVX2 void scale_axpy_avx2(float beta, float alpha, const float* x, float* y,
                                    int64_t n) {
  simd::scale_axpy(beta, alpha, x, y, n);
}

struct VecOps {
  DotFn dot;
  ScaleAxpyFn scale_axpy;
};

VecOps vec_ops() {
  if (isa_level() >= IsaLevel::kAvx2) return {dot_avx2, scale_axpy_avx2};
  return {dot_scalar, scale_axpy_scalar};
}

const float* mla_entry(const MlaDecodeParams& p, int64_t j) {
  return p.cache + static_cast<int64_t>(p.block_table[j / p.block_size]) * p.block_stride +
         (j % p.block_size) * p.entry_stride;
}

// Online-softmax state of one chunk of keys for all heads.
struct MlaPartial {
  std::vector<float> max;  // [H]
  std::vector<float> sum;  // [H]
  std::vector<float> acc;  // [H, L], unnormalised
};

// Keys [j0, j1) for every head: each cache entry is read once per sub-block and used by all
// heads while it is in L1.
void mla_chunk(const MlaDecodeParams& p, const VecOps& ops, int64_t j0, int64_t j1,
               MlaPartial& part) {
  constexpr int64_t kSub = 32;
  const int64_t H = p.heads, L = p.latent_dim, R = p.rope_dim;
  part.max.assign(H, -std::numeric_limits<float>::infinity());
  part.sum.assign(H, 0.0f);
  part.acc.assign(H * L, 0.0f);
  std::vector<float> scores(H * kSub);  // [H, kSub]
  for (int64_t s0 = j0; s0 < j1; s0 += kSub) {
    const int64_t n = std::min(kSub, j1 - s0);
    for (int64_t j = 0; j < n; ++j) {
      const float* e = mla_entry(p, s0 + j);
      for (int64_t h = 0; h < H; ++h) {
        scores[h * kSub + j] =
            p.scale * (ops.dot(p.q_lat + h * L, e, L) + ops.dot(p.q_pe + h * R, e + L, R));
      }
    }
    for (int64_t h = 0; h < H; ++h) {
      float* sc = scores.data() + h * kSub;
      float mx = part.max[h];
      for (int64_t j = 0; j < n; ++j) mx = std::max(mx, sc[j]);
      const float alpha = std::exp(part.max[h] - mx);  // 0 on the first sub-block
      float l = part.sum[h] * alpha;
      for (int64_t j = 0; j < n; ++j) {
        sc[j] = std::exp(sc[j] - mx);
        l += sc[j];
      }
      part.sum[h] = l;
      part.max[h] = mx;
      if (alpha != 1.0f) ops.scale_axpy(alpha, 0.0f, part.acc.data() + h * L, part.acc.data() + h * L, L);
    }
    for (int64_t j = 0; j < n; ++j) {
      const float* e = mla_entry(p, s0 + j);
      for (int64_t h = 0; h < H; ++h) {
        ops.scale_axpy(1.0f, scores[h * kSub + j], e, part.acc.data() + h * L, L);
      }
    }
  }
}

}  // namespace

void mha_prefill(const MhaParams& p) {
  const VecOps ops = vec_ops();
  const int64_t T = p.num_q, H = p.heads;
  // Items are ordered head-major so a thread walks consecutive queries of one head and
  // keeps that head's keys and values in cache.
  parallel_for(T * H, [&](int64_t b, int64_t e) {
    std::vector<float> scores(p.num_kv);
    for (int64_t item = b; item < e; ++item) {
      const int64_t h = item / T, t = item % T;
      const int64_t nk = p.num_kv - T + t + 1;
      const float* q = p.q + t * p.q_stride + h * p.dqk;
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < nk; ++j) {
        scores[j] = p.scale * ops.dot(q, p.k + j * p.k_stride + h * p.dqk, p.dqk);
        mx = std::max(mx, scores[j]);
      }
      float sum = 0;
      for (int64_t j = 0; j < nk; ++j) {
        scores[j] = std::exp(scores[j] - mx);
        sum += scores[j];
      }
      float* o = p.out + t * p.out_stride + h * p.dv;
      std::fill(o, o + p.dv, 0.0f);
      const float inv = 1.0f / sum;
      for (int64_t j = 0; j < nk; ++j) {
        ops.scale_axpy(1.0f, scores[j] * inv, p.v + j * p.v_stride + h * p.dv, o, p.dv);
      }
    }
  });
}

void mha_prefill_ref(const MhaParams& p) {
  std::vector<double> scores(p.num_kv);
  for (int64_t t = 0; t < p.num_q; ++t) {
    const int64_t nk = p.num_kv - p.num_q + t + 1;
    for (int64_t h = 0; h < p.heads; ++h) {
      const float* q = p.q + t * p.q_stride + h * p.dqk;
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < nk; ++j) {
        const float* k = p.k + j * p.k_stride + h * p.dqk;
        double s = 0;
        for (int64_t d = 0; d < p.dqk; ++d) s += static_cast<double>(q[d]) * k[d];
        scores[j] = s * p.scale;
        mx = std::max(mx, scores[j]);
      }
      double sum = 0;
      for (int64_t j = 0; j < nk; ++j) sum += (scores[j] = std::exp(scores[j] - mx));
      float* o = p.out + t * p.out_stride + h * p.dv;
      for (int64_t d = 0; d < p.dv; ++d) {
        double acc = 0;
        for (int64_t j = 0; j < nk; ++j) acc += scores[j] * p.v[j * p.v_stride + h * p.dv + d];
        o[d] = static_cast<float>(acc / sum);
      }
    }
  }
}

void mla_decode(const MlaDecodeParams& p) {
  const int64_t H = p.heads, L = p.latent_dim;
  if (p.num_kv <= 0) {
    std::fill(p.out_lat, p.out_lat + H * L, 0.0f);
    return;
  }
  const VecOps ops = vec_ops();
  // Split the keys into one chunk per thread (at least kMinChunk keys each), then merge the
  // chunks' online-softmax states (flash-decoding).
  constexpr int64_t kMinChunk = 64;
  const int64_t max_chunks = omp_in_parallel() ? 1 : num_threads();
  const int64_t chunks =
      std::clamp<int64_t>((p.num_kv + kMinChunk - 1) / kMinChunk, 1, max_chunks);
  std::vector<MlaPartial> parts(chunks);
  const int64_t per = (p.num_kv + chunks - 1) / chunks;
  parallel_for(chunks, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) {
      mla_chunk(p, ops, c * per, std::min(p.num_kv, (c + 1) * per), parts[c]);
    }
  });
  for (int64_t h = 0; h < H; ++h) {
    float mx = -std::numeric_limits<float>::infinity();
    for (const MlaPartial& part : parts) mx = std::max(mx, part.max[h]);
    float* o = p.out_lat + h * L;
    std::fill(o, o + L, 0.0f);
    float total = 0;
    for (const MlaPartial& part : parts) {
      const float w = std::exp(part.max[h] - mx);
      total += w * part.sum[h];
      ops.scale_axpy(1.0f, w, part.acc.data() + h * L, o, L);
    }
    const float inv = 1.0f / total;
    for (int64_t i = 0; i < L; ++i) o[i] *= inv;
  }
}

void mla_decode_ref(const MlaDecodeParams& p) {
  const int64_t H = p.heads, L = p.latent_dim, R = p.rope_dim;
  std::vector<double> scores(p.num_kv);
  for (int64_t h = 0; h < H; ++h) {
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < p.num_kv; ++j) {
      const float* e = mla_entry(p, j);
      double s = 0;
      for (int64_t i = 0; i < L; ++i) s += static_cast<double>(p.q_lat[h * L + i]) * e[i];
      for (int64_t i = 0; i < R; ++i) s += static_cast<double>(p.q_pe[h * R + i]) * e[L + i];
      scores[j] = s * p.scale;
      mx = std::max(mx, scores[j]);
    }
    double sum = 0;
    for (int64_t j = 0; j < p.num_kv; ++j) sum += (scores[j] = std::exp(scores[j] - mx));
    for (int64_t i = 0; i < L; ++i) {
      double acc = 0;
      for (int64_t j = 0; j < p.num_kv; ++j) acc += scores[j] * mla_entry(p, j)[i];
      p.out_lat[h * L + i] = p.num_kv > 0 ? static_cast<float>(acc / sum) : 0.0f;
    }
  }
}

}  // namespace moeserve
