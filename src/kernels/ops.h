// Element-wise and row-wise kernels over f32 activations. Each has a scalar reference
// (suffix _ref) and is dispatched to the best ISA path at run time (isa_level()).
// Thread-safety: stateless; rmsnorm, silu_mul and fp8_block_dequant split rows over OpenMP
// threads themselves, the others run on the calling thread.
#pragma once

#include <cstdint>

namespace moeserve {

// y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * w.  x and y may alias.
// Strides are in elements between rows.
void rmsnorm(const float* x, int64_t x_stride, const float* w, float* y, int64_t y_stride,
             int64_t rows, int64_t dim, float eps);
void rmsnorm_ref(const float* x, int64_t x_stride, const float* w, float* y, int64_t y_stride,
                 int64_t rows, int64_t dim, float eps);

// gate_up: [rows, 2*inter] = [gate | up]; out[rows, inter] = silu(gate) * up.
void silu_mul(const float* gate_up, float* out, int64_t rows, int64_t inter);
void silu_mul_ref(const float* gate_up, float* out, int64_t rows, int64_t inter);

// Bulk conversions (f32 -> bf16 rounds to nearest even, NaN stays NaN).
void bf16_to_f32(const uint16_t* src, float* dst, int64_t n);
void f32_to_bf16(const float* src, uint16_t* dst, int64_t n);
void bf16_to_f32_ref(const uint16_t* src, float* dst, int64_t n);
void f32_to_bf16_ref(const float* src, uint16_t* dst, int64_t n);

// In-place numerically stable softmax of each row.
void softmax_rows(float* x, int64_t rows, int64_t cols);
void softmax_rows_ref(float* x, int64_t rows, int64_t cols);

// y += alpha * x
void axpy(float alpha, const float* x, float* y, int64_t n);
void axpy_ref(float alpha, const float* x, float* y, int64_t n);

// DeepSeek-V3 fp8 block dequantisation: w[out, in] (F8_E4M3) * scale_inv[ceil(out/bn),
// ceil(in/bk)] -> dst[out, in] in f32 (dst_bf16 == nullptr) or bf16 (dst_f32 == nullptr).
void fp8_block_dequant(const uint8_t* w, const float* scale_inv, int64_t out, int64_t in,
                       int64_t block_n, int64_t block_k, float* dst_f32, uint16_t* dst_bf16);
void fp8_block_dequant_ref(const uint8_t* w, const float* scale_inv, int64_t out, int64_t in,
                           int64_t block_n, int64_t block_k, float* dst_f32, uint16_t* dst_bf16);

}  // namespace moeserve
