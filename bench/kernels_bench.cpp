// Kernel micro-benchmarks against the machine's ceilings (DRAM read bandwidth, oneDNN's
// own matmul rate). GEMV weights rotate over enough copies to defeat the last-level cache,
// so bytes/s is DRAM bandwidth, as in decode.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/tensor.h"
#include "kernels/attention.h"
#include "kernels/ceilings.h"
#include "kernels/linear.h"
#include "kernels/ops.h"

namespace moeserve {
namespace {

constexpr int64_t kRotateBytes = int64_t{256} << 20;

std::vector<Tensor> weights(int64_t n, int64_t k, DType dt) {
  const int64_t bytes = n * k * static_cast<int64_t>(dtype_size(dt));
  const int64_t copies = std::max<int64_t>(1, kRotateBytes / bytes + 1);
  std::vector<Tensor> ws;
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> d(-1, 1);
  for (int64_t c = 0; c < copies; ++c) {
    Tensor w = Tensor::empty(dt, {n, k});
    for (int64_t i = 0; i < n * k; ++i) {
      if (dt == DType::kBF16) {
        w.data<uint16_t>()[i] = f32_to_bf16(d(rng));
      } else {
        w.data<float>()[i] = d(rng);
      }
    }
    ws.push_back(std::move(w));
  }
  return ws;
}

void BM_DramRead(benchmark::State& st) {
  double gbps = 0;
  for (auto _ : st) gbps = measure_dram_read_gbps(int64_t{1} << 30, 3);
  st.counters["GB/s"] = gbps;
}
BENCHMARK(BM_DramRead)->Iterations(1)->Unit(benchmark::kMillisecond);

void BM_OnednnMatmul(benchmark::State& st) {
  MatmulRate r;
  for (auto _ : st) r = measure_onednn_matmul_gflops(st.range(0) != 0);
  st.counters["GFLOP/s"] = r.gflops;
  st.counters["bf16"] = r.bf16;
}
BENCHMARK(BM_OnednnMatmul)->Arg(0)->Arg(1)->Iterations(1)->Unit(benchmark::kMillisecond);

// args: n, k, m, isa (-1 = Linear::forward dispatch), bf16
void BM_Linear(benchmark::State& st) {
  const int64_t n = st.range(0), k = st.range(1), m = st.range(2);
  const int isa = static_cast<int>(st.range(3));
  const DType dt = st.range(4) ? DType::kBF16 : DType::kF32;
  std::vector<Tensor> ws = weights(n, k, dt);
  std::vector<float> x(m * k, 0.5f), y(m * n);
  size_t i = 0;
  for (auto _ : st) {
    const Tensor& w = ws[i++ % ws.size()];
    if (isa < 0) {
      Linear::create(w).value().forward(x.data(), m, y.data());
    } else {
      linear_impl::small_m(x.data(), m, k, w, y.data(), n, isa);
    }
    benchmark::DoNotOptimize(y.data());
  }
  const double iters = static_cast<double>(st.iterations());
  st.counters["GB/s"] = benchmark::Counter(
      iters * static_cast<double>(n * k * dtype_size(dt)) / 1e9, benchmark::Counter::kIsRate);
  st.counters["GFLOP/s"] =
      benchmark::Counter(iters * 2.0 * m * n * k / 1e9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Linear)
    ->ArgsProduct({{4096}, {2048}, {1, 2, 4}, {0, 1}, {1}})
    ->ArgsProduct({{4096, 102400}, {2048}, {1, 2, 3, 4}, {1, 2}, {1}})
    ->ArgsProduct({{4096}, {2048}, {1, 4}, {1}, {0}})
    ->ArgsProduct({{2048}, {2048}, {1, 2, 4, 5, 6, 8, 12, 16, 32, 512}, {-1}, {0, 1}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

void BM_MlaDecode(benchmark::State& st) {
  const int64_t H = st.range(0), L = 512, R = 64, bs = 16, kv = st.range(1);
  const int64_t entry = L + R, nb = (kv + bs - 1) / bs;
  std::vector<float> cache(nb * bs * entry, 0.01f), ql(H * L, 0.1f), qp(H * R, 0.1f), out(H * L);
  std::vector<int32_t> table(nb);
  for (int64_t b = 0; b < nb; ++b) table[b] = static_cast<int32_t>(b);
  MlaDecodeParams p{ql.data(), qp.data(), cache.data(), table.data(), bs, bs * entry, entry, kv, H,
                    L,         R,         0.1f,         out.data()};
  for (auto _ : st) {
    mla_decode(p);
    benchmark::DoNotOptimize(out.data());
  }
  st.counters["GB/s"] = benchmark::Counter(
      static_cast<double>(st.iterations()) * kv * entry * 4 / 1e9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_MlaDecode)->Args({16, 4096})->Args({128, 4096})->UseRealTime();

void BM_MhaPrefill(benchmark::State& st) {
  const int64_t T = st.range(0), H = 16, dqk = 192, dv = 128;
  std::vector<float> q(T * H * dqk, 0.1f), k(T * H * dqk, 0.1f), v(T * H * dv, 0.1f), o(T * H * dv);
  MhaParams p{q.data(), H * dqk, k.data(), H * dqk, v.data(), H * dv, o.data(),
              H * dv,   T,       T,        H,       dqk,      dv,     0.07f};
  for (auto _ : st) {
    mha_prefill(p);
    benchmark::DoNotOptimize(o.data());
  }
  st.counters["GFLOP/s"] = benchmark::Counter(
      static_cast<double>(st.iterations()) * T * T / 2.0 * H * (dqk + dv) * 2 / 1e9,
      benchmark::Counter::kIsRate);
}
BENCHMARK(BM_MhaPrefill)->Arg(512)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace moeserve

BENCHMARK_MAIN();
