// Linear layers y = x · Wᵀ with W stored [out, in] row-major (Hugging Face layout), weights in
// F32 or BF16, activations in F32. Small m (decode) runs a memory-bound GEMV that streams the
// weights once; large m runs oneDNN (bf16 matmul where the CPU has it, else blocks of W
// widened to f32 and fed to oneDNN's f32 GEMM). The path is picked at run time, per weight
// shape: the GEMV kernel and the largest m it takes come from this machine's measured kernel
// table when there is one (kernels/linear_tuning.h), else from built-in defaults.
//
// Precision contract: the result must not depend on m (which path ran), or a token's output
// would depend on how many others share its step (expert parallelism changes every expert's
// row count, and one rounding difference can flip a later layer's expert choice). So for BF16
// weights, where the ISA level has native bf16 matmul (linear_rounds_activations()), every
// path rounds x to bf16 first (the bf16 matmul's inputs); elsewhere every path keeps x in
// f32. Paths then differ only in f32 summation order.
// Thread-safety: forward() is const and may be called from one thread at a time per object
// (it uses OpenMP internally).
#pragma once

#include <memory>

#include "core/status.h"
#include "core/tensor.h"

namespace moeserve {

class Linear {
 public:
  Linear() = default;
  // w: [out, in], F32 or BF16. The tensor's memory must outlive the Linear (views are fine).
  static StatusOr<Linear> create(Tensor w);

  int64_t out_features() const { return w_.dim(0); }
  int64_t in_features() const { return w_.dim(1); }
  const Tensor& weight() const { return w_; }

  // y[m, out] = x[m, in] · Wᵀ. ldx/ldy are row strides in elements (0 = dense).
  void forward(const float* x, int64_t m, float* y, int64_t ldx = 0, int64_t ldy = 0) const;

 private:
  Tensor w_;
};

// True when Linear rounds activations to bf16 for weights of this dtype at the current ISA
// level (BF16 weights and a native bf16 matmul; see the precision contract above).
bool linear_rounds_activations(DType weights);

// Entries of the process-wide cache of oneDNN bf16 matmul primitives behind the large-m path
// (bounded: one per row bucket and weight shape, at most a few hundred; see linear.cpp).
size_t linear_primitive_cache_entries();

// Plain scalar reference of Linear::forward (double accumulation); round_x_to_bf16 applies
// the bf16-activation contract (pass linear_rounds_activations(w.dtype())).
void linear_ref(const float* x, int64_t m, const Tensor& w, float* y, bool round_x_to_bf16 = false);

// Internal entry points, exposed so the kernel harness can run each ISA path.
namespace linear_impl {
// GEMV/small-m path for a given ISA level (static_cast<int>(IsaLevel); clamped to what the
// hardware has); any m, weights streamed once per 8 rows. Splits output rows over threads.
void small_m(const float* x, int64_t m, int64_t ldx, const Tensor& w, float* y, int64_t ldy,
             int isa);
// oneDNN-backed large-m path: f32 weights -> sgemm; bf16 weights -> oneDNN bf16 matmul where
// the CPU has native bf16, else 256-row blocks widened to f32 per thread + sgemm.
void large_m(const float* x, int64_t m, int64_t ldx, const Tensor& w, float* y, int64_t ldy);
}  // namespace linear_impl

}  // namespace moeserve
