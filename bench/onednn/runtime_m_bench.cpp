// oneDNN bf16 matmul with M fixed at primitive creation against M as a run-time dimension
// (DNNL_RUNTIME_DIM_VAL), same weights and inputs, best of 3 timed loops each. Standalone (not
// part of the CMake build), for the choice in src/kernels/linear.cpp:
//   g++ -O2 -std=c++17 bench/onednn/runtime_m_bench.cpp -o /tmp/runtime_m_bench -ldnnl
//   OMP_NUM_THREADS=1 /tmp/runtime_m_bench
// Prints the implementation oneDNN picked for each (brg: brgemm; gemm:jit: gemm-based).
#include <oneapi/dnnl/dnnl.hpp>
#include <chrono>
#include <cstdio>
#include <vector>
#include <cstdlib>
using namespace dnnl;
using dt = memory::data_type;
int main() {
  engine eng(engine::kind::cpu, 0);
  stream s(eng);
  int64_t shapes[][2] = {{256, 512}, {2048, 1408}, {2048, 3072}, {1408, 2048}};
  int64_t ms[] = {5, 8, 16, 33, 64, 128, 256, 512, 1024};
  for (auto& kn : shapes) {
    int64_t k = kn[0], n = kn[1];
    std::vector<uint16_t> w(k * n, 0x3f80), x(1024 * k, 0x3f80);
    std::vector<float> y(1024 * n);
    memory::desc rsrc({DNNL_RUNTIME_DIM_VAL, k}, dt::bf16, {k, 1});
    memory::desc rwei({k, n}, dt::bf16, {1, k});
    memory::desc rdst({DNNL_RUNTIME_DIM_VAL, n}, dt::f32, {n, 1});
    matmul::primitive_desc rpd(matmul::desc(rsrc, rwei, rdst), eng);
    matmul rprim(rpd);
    for (int64_t m : ms) {
      memory::desc src({m, k}, dt::bf16, {k, 1});
      memory::desc dst({m, n}, dt::f32, {n, 1});
      matmul::primitive_desc pd(matmul::desc(src, rwei, dst), eng);
      matmul prim(pd);
      memory sm(src, eng, x.data()), wm(rwei, eng, w.data()), dm(dst, eng, y.data());
      auto run = [&](matmul& p) {
        p.execute(s, {{DNNL_ARG_SRC, sm}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DST, dm}});
        s.wait();
      };
      double t[2];
      matmul* ps[2] = {&prim, &rprim};
      for (int v = 0; v < 2; ++v) {
        for (int i = 0; i < 3; ++i) run(*ps[v]);
        int iters = std::max<int64_t>(5, 200000000 / (m * k * n));
        double best = 1e9;
        for (int rep = 0; rep < 3; ++rep) {
          auto t0 = std::chrono::steady_clock::now();
          for (int i = 0; i < iters; ++i) run(*ps[v]);
          double dtm = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / iters;
          best = std::min(best, dtm);
        }
        t[v] = best;
      }
      printf("k=%ld n=%ld m=%ld fixed=%.1fus runtime=%.1fus ratio=%.2f impl_fixed=%s impl_rt=%s\n", k, n, m,
             t[0] * 1e6, t[1] * 1e6, t[1] / t[0], pd.impl_info_str(), rpd.impl_info_str());
    }
  }
}
