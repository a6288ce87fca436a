// Machine ceilings the benchmarks compare against: DRAM read bandwidth (all threads
// streaming a large buffer) and oneDNN's own matmul rate. Each call takes from a fraction
// of a second to a few seconds and uses every OpenMP thread; call them from one thread.
#pragma once

#include <cstdint>

namespace moeserve {

// Best-of-`repeats` read bandwidth in GB/s (1e9 bytes/s) over a `bytes` buffer read by all
// threads (each its own contiguous part). Returns 0 if the buffer cannot be allocated.
double measure_dram_read_gbps(int64_t bytes = int64_t{1} << 30, int repeats = 5);

struct MatmulRate {
  double gflops = 0;  // best rate, 1e9 FLOP/s (2*m*n*k per matmul)
  bool bf16 = false;  // which data type was measured
};

// oneDNN matmul at m = n = k = `size`: bf16 inputs when want_bf16 and this CPU's oneDNN
// implements it, else f32. Best of `repeats` timed runs after one warm-up.
MatmulRate measure_onednn_matmul_gflops(bool want_bf16, int64_t size = 2048, int repeats = 5);

// Whether Linear uses oneDNN's bf16 matmul here: native bf16 in the CPU (AVX512-BF16/AMX)
// and a creatable primitive (probed once).
bool onednn_bf16_matmul_available();

}  // namespace moeserve
