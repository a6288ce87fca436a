// One harness for every kernel (in the spirit of ggml's test-backend-ops): each case runs one
// implementation path (an ISA level, the large-m oneDNN path, ...) of one kernel on one shape
// and compares it with the kernel's scalar reference under a per-op tolerance. Every case is
// its own ctest entry, named op/path/shape.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <string>
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

struct Case {
  std::string name;
  IsaLevel isa;                 // cap applied while the case runs
  double tol;                   // max |got - ref| / max |ref|
  std::function<double()> run;  // returns that normalised error (or +inf on a contract break)
};

std::vector<float> random_vec(int64_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// Max abs difference over max abs reference value; +inf on NaN mismatch.
double norm_err(const float* got, const float* ref, int64_t n) {
  double diff = 0, mag = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (std::isnan(got[i]) != std::isnan(ref[i])) return std::numeric_limits<double>::infinity();
    if (std::isnan(ref[i])) continue;
    diff = std::max(diff, std::fabs(static_cast<double>(got[i]) - ref[i]));
    mag = std::max(mag, std::fabs(static_cast<double>(ref[i])));
  }
  return diff / std::max(mag, 1e-30);
}

// Every ISA level, whatever this CPU has: a case for a level the CPU lacks is reported as
// skipped (with the reason), so a run says which paths it did not check.
std::vector<IsaLevel> isa_paths() {
  return {IsaLevel::kPortable, IsaLevel::kAvx2, IsaLevel::kAvx512, IsaLevel::kAvx512Bf16,
          IsaLevel::kAmx};
}

// The levels with their own element-wise and attention kernels (above AVX-512 they run the
// AVX-512 code).
std::vector<IsaLevel> simd_paths() {
  return {IsaLevel::kPortable, IsaLevel::kAvx2, IsaLevel::kAvx512};
}

std::string isa_str(IsaLevel l) {
  return std::string(isa_name(l));
}

Tensor make_weight(int64_t n, int64_t k, bool bf16, uint32_t seed) {
  std::vector<float> v = random_vec(n * k, seed);
  Tensor w = Tensor::empty(bf16 ? DType::kBF16 : DType::kF32, {n, k});
  for (int64_t i = 0; i < n * k; ++i) {
    if (bf16) {
      w.data<uint16_t>()[i] = f32_to_bf16(v[i]);
    } else {
      w.data<float>()[i] = v[i];
    }
  }
  return w;
}

// Runs `path` on strided x/y and compares with linear_ref under the precision contract of
// the ISA level in force (bf16-rounded activations where Linear rounds them); padding of y
// must stay untouched. Every path is then held to f32 summation-order error (1e-5), so a
// wrong result cannot hide inside a rounding tolerance.
double linear_err(int64_t m, int64_t n, int64_t k, bool bf16,
                  const std::function<void(const float*, int64_t, int64_t, const Tensor&, float*,
                                           int64_t)>& path) {
  const Tensor w = make_weight(n, k, bf16, static_cast<uint32_t>(n * 31 + k));
  const int64_t ldx = k + 3, ldy = n + 5;
  std::vector<float> x = random_vec(m * ldx, static_cast<uint32_t>(m + 7));
  std::vector<float> xd(m * k);
  for (int64_t r = 0; r < m; ++r) std::copy_n(x.data() + r * ldx, k, xd.data() + r * k);
  constexpr float kSentinel = 12345.0f;
  std::vector<float> y(m * ldy, kSentinel), ref(m * n), got(m * n);
  path(x.data(), m, ldx, w, y.data(), ldy);
  linear_ref(xd.data(), m, w, ref.data(), linear_rounds_activations(w.dtype()));
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t j = n; j < ldy; ++j) {
      if (y[r * ldy + j] != kSentinel) return std::numeric_limits<double>::infinity();
    }
    std::copy_n(y.data() + r * ldy, n, got.data() + r * n);
  }
  return norm_err(got.data(), ref.data(), m * n);
}

void add_linear_cases(std::vector<Case>& cases) {
  // Besides odd sizes: n not a multiple of any row block (8, 6, 3) with full-page rows (k
  // 1408 and 2048, the DeepSeek-V2-Lite expert rows), and rows shorter than the GEMV's
  // prefetch distance (k 200: 400 B), where prefetches wrap into the next block's rows.
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{1, 1},     {7, 13},     {33, 100},
                                                           {64, 256},  {129, 1000}, {300, 2051},
                                                           {45, 1408}, {50, 2048},  {13, 200}};
  for (bool bf16 : {true, false}) {
    const std::string wt = bf16 ? "bf16" : "f32";
    for (auto [n, k] : shapes) {
      for (IsaLevel isa : isa_paths()) {
        for (int64_t m : {1, 2, 3, 4, 5, 6, 7, 8, 9, 11}) {
          cases.push_back({"gemv/" + isa_str(isa) + "/" + wt + "_m" + std::to_string(m) + "_n" +
                               std::to_string(n) + "_k" + std::to_string(k),
                           isa, 1e-5, [=] {
                             return linear_err(m, n, k, bf16,
                                               [isa](const float* x, int64_t mm, int64_t ldx,
                                                     const Tensor& w, float* y, int64_t ldy) {
                                                 linear_impl::small_m(x, mm, ldx, w, y, ldy,
                                                                      static_cast<int>(isa));
                                               });
                           }});
        }
      }
      for (IsaLevel isa : isa_paths()) {
        if (isa == IsaLevel::kPortable) continue;  // oneDNN at its baseline ISA: LinearPortable
        // 17, 300: a row count that is not its bucket (zero padding rows, scratch dst); 256: one
        // whole chunk; 300: a whole chunk and a padded remainder.
        for (int64_t m : {1, 5, 8, 17, 64, 256, 300}) {
          cases.push_back({"large_m/onednn/" + isa_str(isa) + "/" + wt + "_m" + std::to_string(m) +
                               "_n" + std::to_string(n) + "_k" + std::to_string(k),
                           isa, 1e-5,
                           [=] { return linear_err(m, n, k, bf16, linear_impl::large_m); }});
        }
      }
    }
    for (IsaLevel isa : isa_paths()) {
      for (int64_t m = 1; m <= 10; ++m) {
        cases.push_back({"linear_forward/" + isa_str(isa) + "/" + wt + "_m" + std::to_string(m),
                         isa, 1e-5, [=] {
                           return linear_err(m, 77, 515, bf16,
                                             [](const float* x, int64_t mm, int64_t ldx,
                                                const Tensor& w, float* y, int64_t ldy) {
                                               Linear l = Linear::create(w).value();
                                               l.forward(x, mm, y, ldx, ldy);
                                             });
                         }});
      }
    }
  }
}

double rmsnorm_err(int64_t rows, int64_t dim) {
  const int64_t xs = dim + 2, ys = dim + 1;
  std::vector<float> x = random_vec(rows * xs, 1, -3, 3), w = random_vec(dim, 2, 0.5f, 1.5f);
  std::vector<float> y(rows * ys, 0), r(rows * ys, 0);
  rmsnorm(x.data(), xs, w.data(), y.data(), ys, rows, dim, 1e-6f);
  rmsnorm_ref(x.data(), xs, w.data(), r.data(), ys, rows, dim, 1e-6f);
  // In place (x == y) must give the same result.
  std::vector<float> xi = x;
  rmsnorm(xi.data(), xs, w.data(), xi.data(), xs, rows, dim, 1e-6f);
  double e = norm_err(y.data(), r.data(), rows * ys);
  for (int64_t i = 0; i < rows; ++i) {
    e = std::max(e, norm_err(xi.data() + i * xs, r.data() + i * ys, dim));
  }
  return e;
}

double silu_err(int64_t rows, int64_t inter) {
  std::vector<float> gu = random_vec(rows * 2 * inter, 3, -12, 12);
  if (!gu.empty()) gu[0] = -100.0f;  // exp overflow region
  std::vector<float> y(rows * inter), r(rows * inter);
  silu_mul(gu.data(), y.data(), rows, inter);
  silu_mul_ref(gu.data(), r.data(), rows, inter);
  return norm_err(y.data(), r.data(), rows * inter);
}

double softmax_err(int64_t rows, int64_t cols) {
  std::vector<float> x = random_vec(rows * cols, 4, -30, 30);
  std::vector<float> r = x;
  softmax_rows(x.data(), rows, cols);
  softmax_rows_ref(r.data(), rows, cols);
  double e = 0;
  for (int64_t i = 0; i < rows; ++i) {
    e = std::max(e, norm_err(x.data() + i * cols, r.data() + i * cols, cols));
  }
  return e;
}

double axpy_err(int64_t n) {
  std::vector<float> x = random_vec(n, 5), y = random_vec(n, 6), r = y;
  axpy(0.37f, x.data(), y.data(), n);
  axpy_ref(0.37f, x.data(), r.data(), n);
  return norm_err(y.data(), r.data(), n);
}

// Conversions must be bit-exact, including rounding ties, NaN, infinities and denormals.
double convert_err(int64_t n) {
  std::vector<float> f = random_vec(n, 7, -1e4f, 1e4f);
  const float specials[] = {std::numeric_limits<float>::quiet_NaN(),
                            std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(),
                            1e-40f,
                            -0.0f,
                            std::bit_cast<float>(0x3f808000u),  // tie, rounds down to even
                            std::bit_cast<float>(0x3f818000u),  // tie, rounds up to even
                            std::bit_cast<float>(0x7f7fffffu)};
  for (size_t i = 0; i < std::size(specials) && static_cast<int64_t>(i) < n; ++i) {
    f[i * 3 % n] = specials[i];
  }
  std::vector<uint16_t> b(n), br(n);
  f32_to_bf16(f.data(), b.data(), n);
  f32_to_bf16_ref(f.data(), br.data(), n);
  if (b != br) return std::numeric_limits<double>::infinity();
  std::vector<float> g(n), gr(n);
  bf16_to_f32(b.data(), g.data(), n);
  bf16_to_f32_ref(b.data(), gr.data(), n);
  return std::memcmp(g.data(), gr.data(), n * sizeof(float)) == 0
             ? 0.0
             : std::numeric_limits<double>::infinity();
}

double fp8_err(int64_t out, int64_t in, int64_t bn, int64_t bk) {
  std::mt19937 rng(9);
  std::vector<uint8_t> w(out * in);
  for (uint8_t& v : w) v = static_cast<uint8_t>(rng() & 0xff);
  const int64_t so = (out + bn - 1) / bn, si = (in + bk - 1) / bk;
  std::vector<float> s = random_vec(so * si, 10, 1e-3f, 2.0f);
  std::vector<float> f(out * in), fr(out * in);
  std::vector<uint16_t> b(out * in), br(out * in);
  fp8_block_dequant(w.data(), s.data(), out, in, bn, bk, f.data(), nullptr);
  fp8_block_dequant_ref(w.data(), s.data(), out, in, bn, bk, fr.data(), nullptr);
  fp8_block_dequant(w.data(), s.data(), out, in, bn, bk, nullptr, b.data());
  fp8_block_dequant_ref(w.data(), s.data(), out, in, bn, bk, nullptr, br.data());
  if (b != br) return std::numeric_limits<double>::infinity();
  // Independent spot check of the block indexing: last row/column use the last scale.
  const int64_t i = out - 1, j = in - 1;
  const float want = fp8e4m3_to_f32(w[i * in + j]) * s[(i / bn) * si + j / bk];
  if (!(std::isnan(want) && std::isnan(f[i * in + j])) && f[i * in + j] != want) {
    return std::numeric_limits<double>::infinity();
  }
  return norm_err(f.data(), fr.data(), out * in);
}

void add_op_cases(std::vector<Case>& cases) {
  for (IsaLevel isa : simd_paths()) {
    const std::string p = "/" + isa_str(isa) + "/";
    for (auto [rows, dim] :
         std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {3, 7}, {5, 64}, {2, 1000}, {40, 7168}}) {
      const std::string s = "r" + std::to_string(rows) + "_d" + std::to_string(dim);
      cases.push_back({"rmsnorm" + p + s, isa, 2e-6, [=] { return rmsnorm_err(rows, dim); }});
      cases.push_back({"silu_mul" + p + s, isa, 2e-6, [=] { return silu_err(rows, dim); }});
      cases.push_back({"softmax" + p + s, isa, 1e-5, [=] { return softmax_err(rows, dim); }});
    }
    for (int64_t n : {1, 7, 8, 15, 16, 17, 1000, 4099}) {
      const std::string s = "n" + std::to_string(n);
      cases.push_back({"axpy" + p + s, isa, 1e-6, [=] { return axpy_err(n); }});
      cases.push_back({"bf16_convert" + p + s, isa, 0.0, [=] { return convert_err(n); }});
    }
    for (auto [o, i] :
         std::vector<std::pair<int64_t, int64_t>>{{130, 200}, {128, 128}, {1, 5}, {257, 129}}) {
      const std::string s = std::to_string(o) + "x" + std::to_string(i);
      cases.push_back({"fp8_dequant" + p + s, isa, 0.0, [=] { return fp8_err(o, i, 128, 128); }});
    }
  }
}

double mha_err(int64_t T, int64_t S, int64_t H, int64_t dqk, int64_t dv) {
  const int64_t qs = H * dqk + 3, ks = H * dqk + 1, vs = H * dv + 2, os = H * dv + 4;
  std::vector<float> q = random_vec(T * qs, 11), k = random_vec(S * ks, 12),
                     v = random_vec(S * vs, 13);
  std::vector<float> out(T * os, 0), ref(T * os, 0);
  MhaParams p{q.data(), qs, k.data(), ks, v.data(), vs, out.data(),
              os,       T,  S,        H,  dqk,      dv, 1.0f / std::sqrt(static_cast<float>(dqk))};
  mha_prefill(p);
  p.out = ref.data();
  mha_prefill_ref(p);
  return norm_err(out.data(), ref.data(), T * os);
}

// scattered: blocks live in a pool in reversed, spaced-out order so the table really matters;
// otherwise blocks are adjacent in memory (the kernel may then treat runs of pages as one).
double mla_err(int64_t H, int64_t L, int64_t R, int64_t bs, int64_t num_kv, bool scattered) {
  const int64_t entry = L + R + 2, block_stride = bs * entry + (scattered ? 5 : 0);
  const int64_t nblocks = (num_kv + bs - 1) / bs;
  const int64_t pool = scattered ? 2 * nblocks + 1 : nblocks + 1;
  std::vector<int32_t> table(std::max<int64_t>(nblocks, 1));
  for (int64_t b = 0; b < nblocks; ++b) {
    table[b] = static_cast<int32_t>(scattered ? pool - 1 - 2 * b : b + 1);
  }
  std::vector<float> cache = random_vec(pool * block_stride, 14);
  std::vector<float> ql = random_vec(H * L, 15, -0.3f, 0.3f), qp = random_vec(H * R, 16);
  std::vector<float> out(H * L), ref(H * L);
  MlaDecodeParams p{
      ql.data(), qp.data(), cache.data(), table.data(), bs, block_stride, entry, num_kv, H,
      L,         R,         0.1f,         out.data()};
  mla_decode(p);
  p.out_lat = ref.data();
  mla_decode_ref(p);
  return norm_err(out.data(), ref.data(), H * L);
}

void add_attention_cases(std::vector<Case>& cases) {
  for (IsaLevel isa : simd_paths()) {
    const std::string p = "/" + isa_str(isa) + "/";
    for (auto [T, S, H, dqk, dv] : std::vector<std::array<int64_t, 5>>{{1, 1, 1, 7, 5},
                                                                       {5, 5, 3, 24, 16},
                                                                       {17, 28, 2, 192, 128},
                                                                       {1, 300, 4, 33, 9},
                                                                       {64, 64, 1, 64, 64},
                                                                       {65, 65, 1, 16, 8},
                                                                       {130, 150, 2, 40, 24}}) {
      const std::string s = "T" + std::to_string(T) + "_S" + std::to_string(S) + "_H" +
                            std::to_string(H) + "_d" + std::to_string(dqk) + "x" +
                            std::to_string(dv);
      cases.push_back(
          {"mha_prefill" + p + s, isa, 1e-5, [=] { return mha_err(T, S, H, dqk, dv); }});
    }
    for (auto [H, L, R, bs, n] : std::vector<std::array<int64_t, 5>>{{1, 7, 3, 1, 1},
                                                                     {3, 64, 16, 16, 5},
                                                                     {16, 512, 64, 16, 130},
                                                                     {2, 33, 7, 64, 1000},
                                                                     {4, 128, 64, 3, 257}}) {
      for (bool scattered : {true, false}) {
        const std::string s = std::string(scattered ? "scattered" : "adjacent") + "_H" +
                              std::to_string(H) + "_L" + std::to_string(L) + "_R" +
                              std::to_string(R) + "_bs" + std::to_string(bs) + "_kv" +
                              std::to_string(n);
        cases.push_back(
            {"mla_decode" + p + s, isa, 1e-5, [=] { return mla_err(H, L, R, bs, n, scattered); }});
      }
    }
  }
}

std::vector<Case>& all_cases() {
  static std::vector<Case>* cases = [] {
    auto* c = new std::vector<Case>();
    add_linear_cases(*c);
    add_op_cases(*c);
    add_attention_cases(*c);
    return c;
  }();
  return *cases;
}

void warm_up_onednn() {
  static const bool done = [] {
    (void)onednn_bf16_matmul_available();
    return linear_err(16, 8, 8, /*bf16=*/true, linear_impl::large_m) >= 0;
  }();
  (void)done;
}

class KernelHarness : public ::testing::TestWithParam<size_t> {};

TEST_P(KernelHarness, MatchesReference) {
  const Case& c = all_cases()[GetParam()];
  // oneDNN reads its ISA cap once; use it before any cap is lowered so that, in a single
  // process running every case, oneDNN keeps the hardware's ISA.
  warm_up_onednn();
  if (c.isa > hardware_isa_level()) {
    GTEST_SKIP() << "this CPU has no " << isa_name(c.isa) << " path (it has up to "
                 << isa_name(hardware_isa_level()) << ")";
  }
  set_isa_cap(c.isa);
  const double err = c.run();
  set_isa_cap(IsaLevel::kAmx);
  EXPECT_LE(err, c.tol) << c.name;
}

std::string case_name(const ::testing::TestParamInfo<size_t>& info) {
  std::string n = all_cases()[info.param].name;
  for (char& ch : n) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return n;
}

INSTANTIATE_TEST_SUITE_P(AllKernels, KernelHarness, ::testing::Range<size_t>(0, all_cases().size()),
                         case_name);

// The portable cap (MOESERVE_ISA=portable) still gives correct Linear results.
// Run on its own (as ctest does) oneDNN is capped to its baseline ISA too.
TEST(LinearPortable, ForwardAgreesUnderPortableCap) {
  ASSERT_EQ(set_isa_cap(IsaLevel::kPortable), IsaLevel::kPortable);
  EXPECT_EQ(isa_level(), IsaLevel::kPortable);
  for (bool bf16 : {true, false}) {
    for (int64_t m : {1, 3, 4, 6, 33}) {
      const double err = linear_err(
          m, 45, 130, bf16,
          [](const float* x, int64_t mm, int64_t ldx, const Tensor& w, float* y, int64_t ldy) {
            Linear l = Linear::create(w).value();
            l.forward(x, mm, y, ldx, ldy);
          });
      EXPECT_LE(err, 1e-5) << "bf16=" << bf16 << " m=" << m;
    }
  }
  set_isa_cap(IsaLevel::kAmx);
}

// The bf16 matmul's primitives are keyed by row bucket, not by row count: every m from 5 to 600
// on one weight shape adds at most one primitive per bucket (20), where one per m (596) would
// grow with the variety of batch shapes.
TEST(Linear, PrimitiveCacheIsBoundedByRowBuckets) {
  if (!onednn_bf16_matmul_available()) GTEST_SKIP() << "no bf16 matmul on this CPU";
  const int64_t n = 24, k = 40;
  const Tensor w = make_weight(n, k, /*bf16=*/true, 3);
  const size_t before = linear_primitive_cache_entries();
  std::vector<float> x = random_vec(600 * k, 5), y(600 * n);
  for (int64_t m = 5; m <= 600; ++m) linear_impl::large_m(x.data(), m, k, w, y.data(), n);
  EXPECT_LE(linear_primitive_cache_entries() - before, 20u);
}

TEST(Linear, CreateRejectsBadWeights) {
  EXPECT_FALSE(Linear::create(Tensor::empty(DType::kF32, {4})).ok());
  EXPECT_FALSE(Linear::create(Tensor::empty(DType::kF8E4M3, {4, 4})).ok());
  EXPECT_FALSE(Linear::create(Tensor::empty(DType::kF32, {2, 3, 4})).ok());
  auto l = Linear::create(Tensor::empty(DType::kBF16, {6, 5}));
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->out_features(), 6);
  EXPECT_EQ(l->in_features(), 5);
}

}  // namespace
}  // namespace moeserve
