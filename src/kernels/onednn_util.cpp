#include "kernels/onednn_util.h"

#include "core/cpu_features.h"

namespace moeserve::onednn {

const dnnl::engine& engine() {
  static const dnnl::engine* e = new dnnl::engine(dnnl::engine::kind::cpu, 0);
  return *e;
}

std::optional<dnnl::matmul::primitive_desc> matmul_pd(int64_t m, int64_t k, int64_t n, bool bf16,
                                                      int64_t ldy) {
  using dt = dnnl::memory::data_type;
  const dt in_type = bf16 ? dt::bf16 : dt::f32;
  try {
    dnnl::memory::desc src({m, k}, in_type, {k, 1});
    dnnl::memory::desc wei({k, n}, in_type, {1, k});
    dnnl::memory::desc dst({m, n}, dt::f32, {ldy, 1});
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, wei, dst), engine());
  } catch (const dnnl::error&) {
    return std::nullopt;
  }
}

bool bf16_matmul_available() {
  // oneDNN can emulate bf16 on plain AVX-512, slower than widening to f32; only use it where
  // the CPU computes bf16 natively (and the ISA cap allows it).
  if (isa_level() < IsaLevel::kAvx512Bf16) return false;
  static const bool available = [] {
    auto pd = matmul_pd(64, 256, 256, /*bf16=*/true, 256);
    if (!pd) return false;
    try {
      dnnl::matmul prim(*pd);
      (void)prim;
      return true;
    } catch (const dnnl::error&) {
      return false;
    }
  }();
  return available;
}

}  // namespace moeserve::onednn
