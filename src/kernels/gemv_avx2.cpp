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

// Software prefetch distance along each weight row. Every weight row starts a new 4 KB
// page (DeepSeek-V2-Lite rows are 4 KB or 2.8 KB), where the hardware stream prefetcher
// stops and has to retrain, so R rows walked in lockstep would each stall at their start.
// Prefetching a few lines ahead of every row, and wrapping into the next block's rows
// near a row's end, keeps the stream going across rows. Measured on one Zen 3 core with cold
// bf16 expert weights, together with the block sizes below: m = 1 14 -> 18-19 GB/s, m = 2
// 13-15 -> 18, m = 3 10 -> 15, m = 4 9.5 -> 12.5 (512 B beat 256 B and 1-4 KB distances,
// and beat prefetching the next block's rows a whole block ahead).
inline constexpr int64_t kPrefetchBytes = 512;

// Rows per block for M x rows: R*M accumulators, plus M x vectors (when they fit) and one
// weight vector, in the 16 ymm registers. More rows keep more independent loads in flight.
template <int M>
inline constexpr int kBlockRows = M == 1   ? 8
                                  : M == 2 ? 6
                                  : M == 3 ? 3
                                  : M == 4 ? 3
                                           : 1;

// R weight rows [n0, n0 + R) against M x rows; prefetches ahead within rows < n_end only.
template <int M, int R, bool kBf16>
MS_AVX2 void block(const GemvArgs& a, int64_t n0, int64_t n_end) {
  constexpr int64_t kElem = kBf16 ? 2 : 4;
  // x stays in registers across the R weight rows when there is room; otherwise the FMAs
  // take it from L1.
  constexpr bool kXInRegs = R > 1 && R * M + M + 1 <= 16;
  __m256 acc[R][M];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) {
#pragma GCC unroll 8
    for (int r = 0; r < M; ++r) acc[i][r] = _mm256_setzero_ps();
  }
  const int64_t k = a.k;
  const int64_t row_bytes = k * kElem;
  const char* blk = static_cast<const char*>(a.w) + n0 * row_bytes;
  // Rows of the next block (at most R) that this call owns.
  const int64_t next_rows = n_end - n0 - R < R ? n_end - n0 - R : R;
  const int64_t k16 = k & ~int64_t{15};
  for (int64_t kk = 0; kk < k16; kk += 16) {
    // One prefetch per 64 B line of every row (bf16: every other iteration).
    if ((kk * kElem) % 64 == 0) {
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
#pragma GCC unroll 2
    for (int h = 0; h < 16; h += 8) {
      __m256 xv[M];
#pragma GCC unroll 8
      for (int r = 0; r < M; ++r) {
        xv[r] = _mm256_loadu_ps(a.x + r * a.ldx + kk + h);
        // Keep x in a register for all R weight rows instead of re-loading it per FMA.
        if constexpr (kXInRegs) __asm__("" : "+x"(xv[r]));
      }
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) {
        const __m256 wv = load_w8<kBf16>(a.w, (n0 + i) * k + kk + h);
#pragma GCC unroll 8
        for (int r = 0; r < M; ++r) acc[i][r] = _mm256_fmadd_ps(wv, xv[r], acc[i][r]);
      }
    }
  }
  const int64_t k8 = k & ~int64_t{7};
  for (int64_t kk = k16; kk < k8; kk += 8) {
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const __m256 wv = load_w8<kBf16>(a.w, (n0 + i) * k + kk);
#pragma GCC unroll 8
      for (int r = 0; r < M; ++r) {
        acc[i][r] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(a.x + r * a.ldx + kk), acc[i][r]);
      }
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

// For M >= 5 the x rows outgrow L1 (8 x 2048 f32 = 64 KB), and a row-at-a-time walk would
// re-read all of x from L2 for every 4 KB weight row. So walk k in tiles whose x slice stays
// in L1: for each tile, every row of a chunk of output rows, carrying the accumulators
// across tiles in a small buffer. Each lane still sums its products in k order, exactly as
// the untiled walk does. At m = 6..8 this is close to the FMA bound (8 x rows: 8 FLOP per
// weight byte); measured on one core with cold weights, m = 8 4.9 -> 6.8 GB/s, m = 6
// 6.7 -> 8.0 (m = 3, 4 are faster untiled).
inline constexpr int64_t kTileK = 256;     // x tile: M * 256 * 4 B <= 8 KB
inline constexpr int64_t kChunkRows = 32;  // partial sums: 32 * M * 32 B <= 8 KB
// Prefetch distance in row tiles along the walk (row j of a tile, then row j + 1, ...,
// then the next tile's first row); each row tile is a new stretch of a different page.
inline constexpr int64_t kPrefetchRowTiles = 2;

// One k tile [t0, t1) of weight rows [n, n + R) against x rows [G0, G0 + G): R*G
// accumulators, G x vectors and one weight vector in registers, carried over tiles in
// part[i][G0 + g]. The G0 == 0 pass also prefetches, at pf[i] + kk * elem while that is
// below pf_end[i] (bytes, same scale; 0: none).
template <int M, int G0, int G, int R, bool kBf16>
MS_AVX2 inline void tile_block(const GemvArgs& a, int64_t n, int64_t t0, int64_t t1,
                               float (*part)[M][8], const char* const* pf, const int64_t* pf_end) {
  constexpr int64_t kElem = kBf16 ? 2 : 4;
  const int64_t k = a.k;
  __m256 acc[R][G];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) {
#pragma GCC unroll 8
    for (int g = 0; g < G; ++g) {
      acc[i][g] = t0 == 0 ? _mm256_setzero_ps() : _mm256_load_ps(part[i][G0 + g]);
    }
  }
  for (int64_t kk = t0; kk < t1; kk += 8) {
    if constexpr (G0 == 0) {
      if ((kk * kElem) % 64 == 0) {
#pragma GCC unroll 8
        for (int i = 0; i < R; ++i) {
          if (kk * kElem < pf_end[i]) _mm_prefetch(pf[i] + kk * kElem, _MM_HINT_T0);
        }
      }
    }
    __m256 xv[G];
#pragma GCC unroll 8
    for (int g = 0; g < G; ++g) {
      xv[g] = _mm256_loadu_ps(a.x + (G0 + g) * a.ldx + kk);
      if constexpr (R > 1) __asm__("" : "+x"(xv[g]));
    }
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const __m256 wv = load_w8<kBf16>(a.w, (n + i) * k + kk);
#pragma GCC unroll 8
      for (int g = 0; g < G; ++g) acc[i][g] = _mm256_fmadd_ps(wv, xv[g], acc[i][g]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) {
#pragma GCC unroll 8
    for (int g = 0; g < G; ++g) _mm256_store_ps(part[i][G0 + g], acc[i][g]);
  }
}

// Rows [n0 + j, n0 + j + R) of a chunk of nc rows, one k tile, all M x rows in groups of
// at most 4 (2 rows x 4 x rows: 8 accumulators + 4 x vectors + weights fit in registers;
// the weight tile is re-read from L1 for the second group).
template <int M, int R, bool kBf16>
MS_AVX2 void tile_rows(const GemvArgs& a, int64_t n0, int64_t j, int64_t nc, int64_t t0, int64_t t1,
                       int64_t k8, float (*part)[M][8]) {
  constexpr int64_t kElem = kBf16 ? 2 : 4;
  const int64_t row_bytes = a.k * kElem;
  const char* wb = static_cast<const char*>(a.w);
  // Row tiles kPrefetchRowTiles ahead along the walk: further down this tile, or (past the
  // chunk's last row) the next tile's first rows.
  const char* pf[R];
  int64_t pf_end[R];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) {
    const int64_t pj = j + i + kPrefetchRowTiles;
    pf[i] = wb;
    pf_end[i] = 0;
    if (pj < nc) {
      pf[i] = wb + (n0 + pj) * row_bytes;
      pf_end[i] = row_bytes;
    } else if (t1 < k8 && pj - nc < nc) {
      pf[i] = wb + (n0 + pj - nc) * row_bytes + kTileK * kElem;
      pf_end[i] = row_bytes - kTileK * kElem;
    }
  }
  constexpr int kG = M < 4 ? M : 4;
  tile_block<M, 0, kG, R, kBf16>(a, n0 + j, t0, t1, part + j, pf, pf_end);
  if constexpr (M > 4) tile_block<M, 4, M - 4, R, kBf16>(a, n0 + j, t0, t1, part + j, pf, pf_end);
}

template <int M, bool kBf16>
MS_AVX2 void rows_ktiled(const GemvArgs& a, int64_t n_begin, int64_t n_end) {
  const int64_t k = a.k;
  const int64_t k8 = k & ~int64_t{7};
  alignas(32) float part[kChunkRows][M][8];
  for (int64_t n0 = n_begin; n0 < n_end; n0 += kChunkRows) {
    const int64_t nc = n_end - n0 < kChunkRows ? n_end - n0 : kChunkRows;
    for (int64_t t0 = 0; t0 < k8; t0 += kTileK) {
      const int64_t t1 = t0 + kTileK < k8 ? t0 + kTileK : k8;
      int64_t j = 0;
      for (; j + 2 <= nc; j += 2) tile_rows<M, 2, kBf16>(a, n0, j, nc, t0, t1, k8, part);
      if (j < nc) tile_rows<M, 1, kBf16>(a, n0, j, nc, t0, t1, k8, part);
    }
    for (int64_t j = 0; j < nc; ++j) {
      for (int r = 0; r < M; ++r) {
        float s = k8 > 0 ? hsum(_mm256_load_ps(part[j][r])) : 0.0f;
        for (int64_t kk = k8; kk < k; ++kk) {
          s += weight_at<kBf16>(a.w, (n0 + j) * k + kk) * a.x[r * a.ldx + kk];
        }
        a.y[r * a.ldy + n0 + j] = s;
      }
    }
  }
}

template <int M, bool kBf16>
MS_AVX2 void rows(const GemvArgs& a, int64_t n_begin, int64_t n_end) {
  if constexpr (M >= 5) {
    rows_ktiled<M, kBf16>(a, n_begin, n_end);
    return;
  }
  constexpr int R = kBlockRows<M>;
  int64_t n = n_begin;
  for (; n + R <= n_end; n += R) block<M, R, kBf16>(a, n, n_end);
  for (; n < n_end; ++n) block<M, 1, kBf16>(a, n, n_end);
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
