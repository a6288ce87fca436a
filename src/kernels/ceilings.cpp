#include "kernels/ceilings.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "core/cpu_features.h"
#include "core/parallel.h"
#include "core/tensor.h"
#include "kernels/onednn_util.h"
#include "kernels/simd_avx2.h"

namespace moeserve {
namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

MS_TARGET_AVX2 uint64_t read_avx2(const uint8_t* p, int64_t n) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 128 <= n; i += 128) {
    a0 = _mm256_xor_si256(a0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    a1 = _mm256_xor_si256(a1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    a2 = _mm256_xor_si256(a2, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    a3 = _mm256_xor_si256(a3, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  const __m256i x = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
  uint64_t out[4];
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), x);
  return out[0] ^ out[1] ^ out[2] ^ out[3];
}

uint64_t read_scalar(const uint8_t* p, int64_t n) {
  const uint64_t* q = reinterpret_cast<const uint64_t*>(p);
  uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  for (int64_t i = 0; i + 4 <= n / 8; i += 4) {
    a0 ^= q[i];
    a1 ^= q[i + 1];
    a2 ^= q[i + 2];
    a3 ^= q[i + 3];
  }
  return a0 ^ a1 ^ a2 ^ a3;
}

}  // namespace

double measure_dram_read_gbps(int64_t bytes, int repeats) {
  bytes = std::max<int64_t>(bytes & ~int64_t{4095}, 4096);
  auto* buf = static_cast<uint8_t*>(aligned_alloc64(static_cast<size_t>(bytes)));
  if (buf == nullptr) return 0;
  const int threads = num_threads();
  const int64_t per = (bytes / threads) & ~int64_t{127};
  // First touch from the reading threads, so pages land near them.
  parallel_for(threads, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) std::memset(buf + t * per, static_cast<int>(t + 1), per);
  });
  const bool avx2 = isa_level() >= IsaLevel::kAvx2;
  double best = 0;
  volatile uint64_t sink = 0;
  for (int r = 0; r < repeats; ++r) {
    uint64_t results[256] = {};
    const double t0 = now_s();
    parallel_for(threads, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        results[t % 256] = avx2 ? read_avx2(buf + t * per, per) : read_scalar(buf + t * per, per);
      }
    });
    const double dt = now_s() - t0;
    for (uint64_t v : results) sink = sink ^ v;
    best = std::max(best, static_cast<double>(per * threads) / dt / 1e9);
  }
  std::free(buf);
  return best;
}

bool onednn_bf16_matmul_available() {
  return onednn::bf16_matmul_available();
}

MatmulRate measure_onednn_matmul_gflops(bool want_bf16, int64_t size, int repeats) {
  MatmulRate rate;
  rate.bf16 = want_bf16 && onednn::bf16_matmul_available();
  auto pd = onednn::matmul_pd(size, size, size, rate.bf16, size);
  if (!pd) return rate;
  const dnnl::engine& eng = onednn::engine();
  dnnl::matmul prim(*pd);
  dnnl::memory src(pd->src_desc(), eng), wei(pd->weights_desc(), eng), dst(pd->dst_desc(), eng);
  // Small finite values (any bit pattern of 0x3c3c.. is a modest bf16/f32 number).
  std::memset(src.get_data_handle(), 0x3c, pd->src_desc().get_size());
  std::memset(wei.get_data_handle(), 0x3c, pd->weights_desc().get_size());
  dnnl::stream s(eng);
  const double flops = 2.0 * static_cast<double>(size) * size * size;
  for (int r = 0; r <= repeats; ++r) {
    const double t0 = now_s();
    prim.execute(s, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}});
    s.wait();
    const double dt = now_s() - t0;
    if (r > 0) rate.gflops = std::max(rate.gflops, flops / dt / 1e9);
  }
  return rate;
}

}  // namespace moeserve
