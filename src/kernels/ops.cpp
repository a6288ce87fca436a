#include "kernels/ops.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/parallel.h"
#include "kernels/simd_avx2.h"

namespace moeserve {
namespace {

bool use_avx2() {
  return isa_level() >= IsaLevel::kAvx2;
}

// Rows per OpenMP chunk for the row-wise ops, so small batches stay on one thread.
int64_t min_rows_per_thread(int64_t dim) {
  return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, dim));
}

MS_TARGET_AVX2 void rmsnorm_row_avx2(const float* x, const float* w, float* y, int64_t dim,
                                     float eps) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= dim; i += 16) {
    const __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
    s0 = _mm256_fmadd_ps(a, a, s0);
    s1 = _mm256_fmadd_ps(b, b, s1);
  }
  for (; i + 8 <= dim; i += 8) {
    const __m256 a = _mm256_loadu_ps(x + i);
    s0 = _mm256_fmadd_ps(a, a, s0);
  }
  float ss = simd::hsum(_mm256_add_ps(s0, s1));
  for (; i < dim; ++i) ss += x[i] * x[i];
  const float inv = 1.0f / std::sqrt(ss / static_cast<float>(dim) + eps);
  const __m256 vi = _mm256_set1_ps(inv);
  i = 0;
  for (; i + 8 <= dim; i += 8) {
    _mm256_storeu_ps(
        y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vi), _mm256_loadu_ps(w + i)));
  }
  for (; i < dim; ++i) y[i] = x[i] * inv * w[i];
}

void rmsnorm_row_scalar(const float* x, const float* w, float* y, int64_t dim, float eps) {
  float ss = 0;
  for (int64_t i = 0; i < dim; ++i) ss += x[i] * x[i];
  const float inv = 1.0f / std::sqrt(ss / static_cast<float>(dim) + eps);
  for (int64_t i = 0; i < dim; ++i) y[i] = x[i] * inv * w[i];
}

MS_TARGET_AVX2 void silu_mul_row_avx2(const float* g, const float* u, float* o, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 gv = _mm256_loadu_ps(g + i);
    const __m256 e = simd::exp256(_mm256_xor_ps(gv, sign));
    const __m256 s = _mm256_div_ps(gv, _mm256_add_ps(one, e));
    _mm256_storeu_ps(o + i, _mm256_mul_ps(s, _mm256_loadu_ps(u + i)));
  }
  for (; i < n; ++i) o[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

MS_TARGET_AVX2 void bf16_to_f32_avx2(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
    const __m256i lo = _mm256_cvtepu16_epi32(_mm256_castsi256_si128(h));
    const __m256i hi = _mm256_cvtepu16_epi32(_mm256_extracti128_si256(h, 1));
    _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(lo, 16)));
    _mm256_storeu_ps(dst + i + 8, _mm256_castsi256_ps(_mm256_slli_epi32(hi, 16)));
  }
  for (; i < n; ++i) dst[i] = bf16_to_f32(src[i]);
}

// Round to nearest even, NaN -> quiet NaN, in the integer domain; returns values < 2^16
// in the low half of each lane.
MS_TARGET_AVX2 inline __m256i round_bf16(__m256 v) {
  const __m256i u = _mm256_castps_si256(v);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  const __m256i rounded =
      _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), lsb), 16);
  const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
  const __m256i is_nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)),
                                            _mm256_set1_epi32(0x7f800000));
  return _mm256_blendv_epi8(rounded, quiet, is_nan);
}

MS_TARGET_AVX2 void f32_to_bf16_avx2(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i a = round_bf16(_mm256_loadu_ps(src + i));
    const __m256i b = round_bf16(_mm256_loadu_ps(src + i + 8));
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), 0xD8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), packed);
  }
  for (; i < n; ++i) dst[i] = f32_to_bf16(src[i]);
}

MS_TARGET_AVX2 void softmax_row_avx2(float* x, int64_t n) {
  __m256 mv = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(x + i));
  float mx = simd::hmax(mv);
  for (; i < n; ++i) mx = std::max(mx, x[i]);
  const __m256 m8 = _mm256_set1_ps(mx);
  __m256 sv = _mm256_setzero_ps();
  i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = simd::exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), m8));
    _mm256_storeu_ps(x + i, e);
    sv = _mm256_add_ps(sv, e);
  }
  float sum = simd::hsum(sv);
  for (; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const __m256 inv = _mm256_set1_ps(1.0f / sum);
  i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
  for (; i < n; ++i) x[i] *= 1.0f / sum;
}

void softmax_row_scalar(float* x, int64_t n) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = 1.0f / sum;
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

const std::array<float, 256>& fp8_table() {
  static const std::array<float, 256> t = [] {
    std::array<float, 256> a{};
    for (int i = 0; i < 256; ++i) a[i] = fp8e4m3_to_f32(static_cast<uint8_t>(i));
    return a;
  }();
  return t;
}

}  // namespace

void rmsnorm(const float* x, int64_t x_stride, const float* w, float* y, int64_t y_stride,
             int64_t rows, int64_t dim, float eps) {
  const bool avx2 = use_avx2();
  parallel_for(
      rows,
      [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
          if (avx2) {
            rmsnorm_row_avx2(x + r * x_stride, w, y + r * y_stride, dim, eps);
          } else {
            rmsnorm_row_scalar(x + r * x_stride, w, y + r * y_stride, dim, eps);
          }
        }
      },
      min_rows_per_thread(dim));
}

void rmsnorm_ref(const float* x, int64_t x_stride, const float* w, float* y, int64_t y_stride,
                 int64_t rows, int64_t dim, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * x_stride;
    double ss = 0;
    for (int64_t i = 0; i < dim; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    const double inv = 1.0 / std::sqrt(ss / static_cast<double>(dim) + eps);
    float* yr = y + r * y_stride;
    for (int64_t i = 0; i < dim; ++i) yr[i] = static_cast<float>(xr[i] * inv * w[i]);
  }
}

void silu_mul(const float* gate_up, float* out, int64_t rows, int64_t inter) {
  const bool avx2 = use_avx2();
  parallel_for(
      rows,
      [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
          const float* g = gate_up + r * 2 * inter;
          float* o = out + r * inter;
          if (avx2) {
            silu_mul_row_avx2(g, g + inter, o, inter);
          } else {
            for (int64_t i = 0; i < inter; ++i) {
              o[i] = g[i] / (1.0f + std::exp(-g[i])) * g[inter + i];
            }
          }
        }
      },
      min_rows_per_thread(inter));
}

void silu_mul_ref(const float* gate_up, float* out, int64_t rows, int64_t inter) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* g = gate_up + r * 2 * inter;
    for (int64_t i = 0; i < inter; ++i) {
      const double gv = g[i];
      out[r * inter + i] = static_cast<float>(gv / (1.0 + std::exp(-gv)) * g[inter + i]);
    }
  }
}

void bf16_to_f32(const uint16_t* src, float* dst, int64_t n) {
  if (use_avx2()) {
    bf16_to_f32_avx2(src, dst, n);
  } else {
    bf16_to_f32_ref(src, dst, n);
  }
}

void f32_to_bf16(const float* src, uint16_t* dst, int64_t n) {
  if (use_avx2()) {
    f32_to_bf16_avx2(src, dst, n);
  } else {
    f32_to_bf16_ref(src, dst, n);
  }
}

void bf16_to_f32_ref(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = moeserve::bf16_to_f32(src[i]);
}

void f32_to_bf16_ref(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = moeserve::f32_to_bf16(src[i]);
}

void softmax_rows(float* x, int64_t rows, int64_t cols) {
  const bool avx2 = use_avx2();
  for (int64_t r = 0; r < rows; ++r) {
    if (avx2) {
      softmax_row_avx2(x + r * cols, cols);
    } else {
      softmax_row_scalar(x + r * cols, cols);
    }
  }
}

void softmax_rows_ref(float* x, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    float* xr = x + r * cols;
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t i = 0; i < cols; ++i) mx = std::max<double>(mx, xr[i]);
    double sum = 0;
    for (int64_t i = 0; i < cols; ++i) sum += std::exp(xr[i] - mx);
    for (int64_t i = 0; i < cols; ++i) xr[i] = static_cast<float>(std::exp(xr[i] - mx) / sum);
  }
}

void axpy(float alpha, const float* x, float* y, int64_t n) {
  if (use_avx2()) {
    simd::scale_axpy(1.0f, alpha, x, y, n);
  } else {
    axpy_ref(alpha, x, y, n);
  }
}

void axpy_ref(float alpha, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

void fp8_block_dequant(const uint8_t* w, const float* scale_inv, int64_t out, int64_t in,
                       int64_t block_n, int64_t block_k, float* dst_f32, uint16_t* dst_bf16) {
  const std::array<float, 256>& lut = fp8_table();
  const int64_t scale_cols = (in + block_k - 1) / block_k;
  parallel_for(
      out,
      [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
          const float* srow = scale_inv + (r / block_n) * scale_cols;
          const uint8_t* wr = w + r * in;
          for (int64_t c0 = 0, blk = 0; c0 < in; c0 += block_k, ++blk) {
            const int64_t c1 = std::min(in, c0 + block_k);
            const float s = srow[blk];
            if (dst_f32 != nullptr) {
              float* d = dst_f32 + r * in;
              for (int64_t c = c0; c < c1; ++c) d[c] = lut[wr[c]] * s;
            } else {
              uint16_t* d = dst_bf16 + r * in;
              for (int64_t c = c0; c < c1; ++c) d[c] = moeserve::f32_to_bf16(lut[wr[c]] * s);
            }
          }
        }
      },
      std::max<int64_t>(1, 65536 / std::max<int64_t>(1, in)));
}

void fp8_block_dequant_ref(const uint8_t* w, const float* scale_inv, int64_t out, int64_t in,
                           int64_t block_n, int64_t block_k, float* dst_f32, uint16_t* dst_bf16) {
  const int64_t scale_cols = (in + block_k - 1) / block_k;
  for (int64_t r = 0; r < out; ++r) {
    for (int64_t c = 0; c < in; ++c) {
      const float v =
          fp8e4m3_to_f32(w[r * in + c]) * scale_inv[(r / block_n) * scale_cols + c / block_k];
      if (dst_f32 != nullptr) {
        dst_f32[r * in + c] = v;
      } else {
        dst_bf16[r * in + c] = moeserve::f32_to_bf16(v);
      }
    }
  }
}

}  // namespace moeserve
