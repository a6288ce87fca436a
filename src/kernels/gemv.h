// Internal: the small-m (decode) GEMV kernels behind Linear, one per ISA.
// Each computes y[r, n] = sum_k x[r, k] * W[n, k] for rows r < m and output rows
// n in [n_begin, n_end), streaming each weight row once for all m rows (m <= kGemvMaxRows;
// callers split larger m). Single-threaded; the caller splits output rows across threads.
// Not part of the public API.
#pragma once

#include <cstdint>

namespace moeserve::gemv {

inline constexpr int64_t kGemvMaxRows = 8;

struct GemvArgs {
  const float* x;  // [m, k], row stride ldx
  int64_t ldx;
  int64_t m;      // 1..kGemvMaxRows
  const void* w;  // [n, k] row-major, bf16 or f32
  bool w_bf16;
  int64_t k;
  float* y;  // [m, n], row stride ldy
  int64_t ldy;
};

void gemv_portable(const GemvArgs& a, int64_t n_begin, int64_t n_end);
void gemv_avx2(const GemvArgs& a, int64_t n_begin, int64_t n_end);
void gemv_avx512(const GemvArgs& a, int64_t n_begin, int64_t n_end);

}  // namespace moeserve::gemv
