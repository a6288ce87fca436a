// AVX2+FMA GEMV. Compiled with per-function target attributes so the binary still runs on
// CPUs without AVX2; gemv_avx2 is only called when isa_level() >= kAvx2.
#include <immintrin.h>

#include "core/dtype.h"
#include "kernels/gemv.h"

#define MS_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace moeserve::gemv {
namespace {

template <bool kBf16>
MS_AVX2 inline __m256 load_w8(const void* w, int64_t i) {
  if constexpr (kBf16) {
    const __m128i h =
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  } else {
    return _mm256_loadu_ps(static_cast<const float*>(w) + i);
  }
}

template <bool kBf16>
MS_AVX2 inline float weight_at(const void* w, int64_t i) {
  if constexpr (kBf16) {
    return moeserve::bf16_to_f32(static_cast<const uint16_t*>(w)[i]);
  } else {
    return static_cast<const float*>(w)[i];
  }
}

MS_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// R weight rows at a time against M x rows: R*M accumulators, M x vectors and R weight
// vectors live in the 16 ymm registers.
template <int M, int R, bool kBf16>
MS_AVX2 void block(const GemvArgs& a, int64_t n0) {
  __m256 acc[R][M];
#pragma GCC unroll 4
  for (int i = 0; i < R; ++i) {
#pragma GCC unroll 8
    for (int r = 0; r < M; ++r) acc[i][r] = _mm256_setzero_ps();
  }
  const int64_t k = a.k;
  const int64_t k8 = k & ~int64_t{7};
  for (int64_t kk = 0; kk < k8; kk += 8) {
    __m256 xv[M];
#pragma GCC unroll 8
    for (int r = 0; r < M; ++r) {
      xv[r] = _mm256_loadu_ps(a.x + r * a.ldx + kk);
      // Keep x in a register for all R weight rows instead of re-loading it per FMA.
      if constexpr (R > 1) __asm__("" : "+x"(xv[r]));
    }
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i) {
      const __m256 wv = load_w8<kBf16>(a.w, (n0 + i) * k + kk);
#pragma GCC unroll 8
      for (int r = 0; r < M; ++r) acc[i][r] = _mm256_fmadd_ps(wv, xv[r], acc[i][r]);
    }
  }
  for (int i = 0; i < R; ++i) {
    for (int r = 0; r < M; ++r) {
      float s = hsum(acc[i][r]);
      for (int64_t kk = k8; kk < k; ++kk) {
        s += weight_at<kBf16>(a.w, (n0 + i) * k + kk) * a.x[r * a.ldx + kk];
      }
      a.y[r * a.ldy + n0 + i] = s;
    }
  }
}

template <int M, bool kBf16>
MS_AVX2 void rows(const GemvArgs& a, int64_t n_begin, int64_t n_end) {
  constexpr int R = M <= 2 ? 4 : M <= 4 ? 2 : 1;
  int64_t n = n_begin;
  for (; n + R <= n_end; n += R) block<M, R, kBf16>(a, n);
  for (; n < n_end; ++n) block<M, 1, kBf16>(a, n);
}

template <bool kBf16>
MS_AVX2 void dispatch_m(const GemvArgs& a, int64_t n_begin, int64_t n_end) {
  switch (a.m) {
    case 1:
      rows<1, kBf16>(a, n_begin, n_end);
      break;
    case 2:
      rows<2, kBf16>(a, n_begin, n_end);
      break;
    case 3:
      rows<3, kBf16>(a, n_begin, n_end);
      break;
    case 4:
      rows<4, kBf16>(a, n_begin, n_end);
      break;
    case 5:
      rows<5, kBf16>(a, n_begin, n_end);
      break;
    case 6:
      rows<6, kBf16>(a, n_begin, n_end);
      break;
    case 7:
      rows<7, kBf16>(a, n_begin, n_end);
      break;
    default:
      rows<8, kBf16>(a, n_begin, n_end);
      break;
  }
}

}  // namespace

MS_AVX2 void gemv_avx2(const GemvArgs& a, int64_t n_begin, int64_t n_end) {
  if (a.w_bf16) {
    dispatch_m<true>(a, n_begin, n_end);
  } else {
    dispatch_m<false>(a, n_begin, n_end);
  }
}

}  // namespace moeserve::gemv
