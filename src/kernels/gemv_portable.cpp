// Portable scalar GEMV (any x86-64): the fallback and the baseline the ISA paths are
// checked against.
#include "core/dtype.h"
#include "kernels/gemv.h"

namespace moeserve::gemv {
namespace {

template <bool kBf16>
float weight_at(const void* w, int64_t i) {
  if constexpr (kBf16) {
    return moeserve::bf16_to_f32(static_cast<const uint16_t*>(w)[i]);
  } else {
    return static_cast<const float*>(w)[i];
  }
}

template <bool kBf16>
void run(const GemvArgs& a, int64_t n_begin, int64_t n_end) {
  for (int64_t n = n_begin; n < n_end; ++n) {
    // Four partial sums per x row give the scalar core some independent chains.
    float acc[kGemvMaxRows][4] = {};
    const int64_t base = n * a.k;
    int64_t k = 0;
    for (; k + 4 <= a.k; k += 4) {
      const float w0 = weight_at<kBf16>(a.w, base + k);
      const float w1 = weight_at<kBf16>(a.w, base + k + 1);
      const float w2 = weight_at<kBf16>(a.w, base + k + 2);
      const float w3 = weight_at<kBf16>(a.w, base + k + 3);
      for (int64_t r = 0; r < a.m; ++r) {
        const float* xr = a.x + r * a.ldx + k;
        acc[r][0] += w0 * xr[0];
        acc[r][1] += w1 * xr[1];
        acc[r][2] += w2 * xr[2];
        acc[r][3] += w3 * xr[3];
      }
    }
    for (; k < a.k; ++k) {
      const float wk = weight_at<kBf16>(a.w, base + k);
      for (int64_t r = 0; r < a.m; ++r) acc[r][0] += wk * a.x[r * a.ldx + k];
    }
    for (int64_t r = 0; r < a.m; ++r) {
      a.y[r * a.ldy + n] = (acc[r][0] + acc[r][1]) + (acc[r][2] + acc[r][3]);
    }
  }
}

}  // namespace

void gemv_portable(const GemvArgs& a, int64_t n_begin, int64_t n_end) {
  if (a.w_bf16) {
    run<true>(a, n_begin, n_end);
  } else {
    run<false>(a, n_begin, n_end);
  }
}

}  // namespace moeserve::gemv
