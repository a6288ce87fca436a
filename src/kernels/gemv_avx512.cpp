// AVX-512 (F, BW, VL) GEMV. Compiled with per-function target attributes so the binary still
// runs on CPUs without AVX-512; gemv_avx512 is only called when isa_level() >= kAvx512.
// GCC 12's avx512fintrin.h trips -Wuninitialized on its own _mm512_undefined_* helpers
// (GCC PR 105593) when they are inlined into target-attributed functions. Clang has neither
// the bug nor -Wmaybe-uninitialized.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include "core/dtype.h"
#include "kernels/gemv.h"

#define MS_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))

namespace moeserve::gemv {
namespace {

template <bool kBf16>
MS_AVX512 inline __m512 load_w16(const void* w, int64_t i) {
  if constexpr (kBf16) {
    const __m256i h =
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(w) + i));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  } else {
    return _mm512_loadu_ps(static_cast<const float*>(w) + i);
  }
}

template <bool kBf16>
MS_AVX512 inline float weight_at(const void* w, int64_t i) {
  if constexpr (kBf16) {
    return moeserve::bf16_to_f32(static_cast<const uint16_t*>(w)[i]);
  } else {
    return static_cast<const float*>(w)[i];
  }
}

MS_AVX512 inline float hsum(__m512 v) {
  return _mm512_reduce_add_ps(v);
}

// Software prefetch distance along each weight row, as in the AVX2 GEMV (see there): every
// weight row starts a new 4 KB page, where the hardware stream prefetcher retrains; prefetching
// a few lines ahead of every row, wrapping into the next block's rows near a row's end, keeps
// the stream going across rows.
inline constexpr int64_t kPrefetchBytes = 512;

// Rows per block for M x rows: R*M accumulators, M x vectors and one weight vector in the 32
// zmm registers; more rows keep more independent loads in flight. Past M = 4 the x rows and
// accumulators crowd the registers: two rows.
template <int M>
inline constexpr int kBlockRows = M == 1   ? 8
                                  : M == 2 ? 8
                                  : M == 3 ? 6
                                  : M == 4 ? 5
                                           : 2;

// R weight rows [n0, n0 + R) against M x rows; prefetches ahead within rows < n_end only.
template <int M, int R, bool kBf16>
MS_AVX512 void block(const GemvArgs& a, int64_t n0, int64_t n_end) {
  constexpr int64_t kElem = kBf16 ? 2 : 4;
  constexpr bool kPrefetch = M <= 4;
  __m512 acc[R][M];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) {
#pragma GCC unroll 8
    for (int r = 0; r < M; ++r) acc[i][r] = _mm512_setzero_ps();
  }
  const int64_t k = a.k;
  const int64_t row_bytes = k * kElem;
  const char* blk = static_cast<const char*>(a.w) + n0 * row_bytes;
  // Rows of the next block (at most R) that this call owns.
  const int64_t next_rows = n_end - n0 - R < R ? n_end - n0 - R : R;
  const int64_t k16 = k & ~int64_t{15};
  for (int64_t kk = 0; kk < k16; kk += 16) {
    // One prefetch per 64 B line of every row (bf16: every other iteration).
    if (kPrefetch && (kk * kElem) % 64 == 0) {
      const int64_t p = kk * kElem + kPrefetchBytes;
      if (p < row_bytes) {
#pragma GCC unroll 8
        for (int i = 0; i < R; ++i) _mm_prefetch(blk + i * row_bytes + p, _MM_HINT_T0);
      } else if (p < 2 * row_bytes) {
#pragma GCC unroll 8
        for (int i = 0; i < R; ++i) {
          if (i < next_rows) _mm_prefetch(blk + (R + i) * row_bytes + (p - row_bytes), _MM_HINT_T0);
        }
      }
    }
    __m512 xv[M];
#pragma GCC unroll 8
    for (int r = 0; r < M; ++r) xv[r] = _mm512_loadu_ps(a.x + r * a.ldx + kk);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const __m512 wv = load_w16<kBf16>(a.w, (n0 + i) * k + kk);
#pragma GCC unroll 8
      for (int r = 0; r < M; ++r) acc[i][r] = _mm512_fmadd_ps(wv, xv[r], acc[i][r]);
    }
  }
  for (int i = 0; i < R; ++i) {
    for (int r = 0; r < M; ++r) {
      float s = hsum(acc[i][r]);
      for (int64_t kk = k16; kk < k; ++kk) {
        s += weight_at<kBf16>(a.w, (n0 + i) * k + kk) * a.x[r * a.ldx + kk];
      }
      a.y[r * a.ldy + n0 + i] = s;
    }
  }
}

template <int M, bool kBf16>
MS_AVX512 void rows(const GemvArgs& a, int64_t n_begin, int64_t n_end) {
  constexpr int R = kBlockRows<M>;
  int64_t n = n_begin;
  for (; n + R <= n_end; n += R) block<M, R, kBf16>(a, n, n_end);
  for (; n < n_end; ++n) block<M, 1, kBf16>(a, n, n_end);
}

template <bool kBf16>
MS_AVX512 void dispatch_m(const GemvArgs& a, int64_t n_begin, int64_t n_end) {
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

MS_AVX512 void gemv_avx512(const GemvArgs& a, int64_t n_begin, int64_t n_end) {
  if (a.w_bf16) {
    dispatch_m<true>(a, n_begin, n_end);
  } else {
    dispatch_m<false>(a, n_begin, n_end);
  }
}

}  // namespace moeserve::gemv
