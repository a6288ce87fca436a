#include "kernels/attention.h"

#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/cpu_features.h"
#include "core/parallel.h"
#include "kernels/ops.h"
#include "kernels/simd_avx2.h"

namespace moeserve {
namespace {

// y = beta * y + alpha * x
void scale_axpy_scalar(float beta, float alpha, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = y[i] * beta + alpha * x[i];
}

MS_TARGET_AVX2 void scale_axpy_avx2(float beta, float alpha, const float* x, float* y, int64_t n) {
  simd::scale_axpy(beta, alpha, x, y, n);
}

using ScaleAxpyFn = void (*)(float beta, float alpha, const float* x, float* y, int64_t n);

ScaleAxpyFn scale_axpy_fn() {
  return isa_level() >= IsaLevel::kAvx2 ? scale_axpy_avx2 : scale_axpy_scalar;
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

// Keys [j0, j1) for every head, in runs of tokens that are contiguous in memory (one page, or
// consecutive pages that happen to be adjacent), at most kSub at a time:
//   scores[H, n] = scale * q_cat[H, L+R] · E[n, L+R]ᵀ   (E = the run's cache entries)
//   acc[H, L]    = acc * alpha + softmax-numerators[H, n] · E[n, :L]
// both as oneDNN sgemm calls over the strided entries.
void mla_chunk(const MlaDecodeParams& p, const float* q_cat, int64_t j0, int64_t j1,
               MlaPartial& part) {
  constexpr int64_t kSub = 64;
  const int64_t H = p.heads, L = p.latent_dim, D = p.latent_dim + p.rope_dim;
  const int64_t es = p.entry_stride;
  part.max.assign(H, -std::numeric_limits<float>::infinity());
  part.sum.assign(H, 0.0f);
  part.acc.assign(H * L, 0.0f);
  std::vector<float> scores(H * kSub);  // [H, n]
  for (int64_t s0 = j0; s0 < j1;) {
    const float* e0 = mla_entry(p, s0);
    int64_t n = 1;
    while (n < kSub && s0 + n < j1 && mla_entry(p, s0 + n) == e0 + n * es) ++n;
    dnnl_sgemm('N', 'T', H, n, D, p.scale, q_cat, D, e0, es, 0.0f, scores.data(), n);
    for (int64_t h = 0; h < H; ++h) {
      float* sc = scores.data() + h * n;
      float mx = part.max[h];
      for (int64_t j = 0; j < n; ++j) mx = std::max(mx, sc[j]);
      const float alpha = std::exp(part.max[h] - mx);  // 0 on the first run
      float l = part.sum[h] * alpha;
      for (int64_t j = 0; j < n; ++j) {
        sc[j] = std::exp(sc[j] - mx);
        l += sc[j];
      }
      part.sum[h] = l;
      part.max[h] = mx;
      if (alpha != 1.0f) {
        float* acc = part.acc.data() + h * L;
        for (int64_t i = 0; i < L; ++i) acc[i] *= alpha;
      }
    }
    dnnl_sgemm('N', 'N', H, L, n, 1.0f, scores.data(), n, e0, es, 1.0f, part.acc.data(), L);
    s0 += n;
  }
}

}  // namespace

void mha_prefill(const MhaParams& p) {
  // Blocks of kQBlock queries of one head: scores = scale * Q_blk · K[0:kend]ᵀ and
  // out = softmax(scores) · V[0:kend] are two oneDNN sgemm calls (strided views of q/k/v/out),
  // with the causal mask applied per row between them. Only the upper triangle inside a block
  // is computed and discarded. Items are (head, block), split over threads; sgemm runs
  // single-threaded inside the parallel region.
  constexpr int64_t kQBlock = 64;
  const int64_t T = p.num_q, S = p.num_kv, H = p.heads;
  if (T <= 0) return;
  const int64_t blocks = (T + kQBlock - 1) / kQBlock;
  parallel_for(H * blocks, [&](int64_t b, int64_t e) {
    std::vector<float> scores(kQBlock * S);  // [nq, kend]
    for (int64_t item = b; item < e; ++item) {
      const int64_t h = item / blocks, t0 = (item % blocks) * kQBlock;
      const int64_t nq = std::min(kQBlock, T - t0);
      const int64_t kend = S - T + t0 + nq;  // keys the block's last query sees
      dnnl_sgemm('N', 'T', nq, kend, p.dqk, p.scale, p.q + t0 * p.q_stride + h * p.dqk, p.q_stride,
                 p.k + h * p.dqk, p.k_stride, 0.0f, scores.data(), kend);
      for (int64_t i = 0; i < nq; ++i) {
        float* row = scores.data() + i * kend;
        const int64_t visible = S - T + t0 + i + 1;
        softmax_rows(row, 1, visible);
        std::fill(row + visible, row + kend, 0.0f);
      }
      dnnl_sgemm('N', 'N', nq, p.dv, kend, 1.0f, scores.data(), kend, p.v + h * p.dv, p.v_stride,
                 0.0f, p.out + t0 * p.out_stride + h * p.dv, p.out_stride);
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
  const ScaleAxpyFn scale_axpy = scale_axpy_fn();
  // q_cat[H, L+R] = [q_lat | q_pe] per head, matching the cache entry layout.
  const int64_t R = p.rope_dim, D = L + R;
  std::vector<float> q_cat(H * D);
  for (int64_t h = 0; h < H; ++h) {
    std::copy_n(p.q_lat + h * L, L, q_cat.data() + h * D);
    std::copy_n(p.q_pe + h * R, R, q_cat.data() + h * D + L);
  }
  // Split the keys into one chunk per thread (at least kMinChunk keys each), then merge the
  // chunks' online-softmax states (flash-decoding).
  constexpr int64_t kMinChunk = 64;
  const int64_t max_chunks = omp_in_parallel() ? 1 : num_threads();
  const int64_t chunks = std::clamp<int64_t>((p.num_kv + kMinChunk - 1) / kMinChunk, 1, max_chunks);
  std::vector<MlaPartial> parts(chunks);
  const int64_t per = (p.num_kv + chunks - 1) / chunks;
  parallel_for(chunks, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) {
      mla_chunk(p, q_cat.data(), c * per, std::min(p.num_kv, (c + 1) * per), parts[c]);
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
      scale_axpy(1.0f, w, part.acc.data() + h * L, o, L);
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
