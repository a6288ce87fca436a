// Internal oneDNN glue shared by Linear's large-m path and the machine ceilings: the CPU
// engine, matmul primitive descriptors for y[m, n] = x[m, k] · Wᵀ with W stored [n, k], and a
// one-time probe of whether this CPU's oneDNN implements a bf16 matmul.
// Thread-safe: the engine and the probe result are created once.
#pragma once

#include <cstdint>
#include <oneapi/dnnl/dnnl.hpp>
#include <optional>

namespace moeserve::onednn {

const dnnl::engine& engine();

// Primitive descriptor for src [m, k] (dense), weights W [n, k] row-major seen as [k, n], and
// f32 dst [m, n] with row stride ldy. bf16: src and weights bf16, else all f32.
// nullopt when oneDNN has no implementation for it on this CPU.
std::optional<dnnl::matmul::primitive_desc> matmul_pd(int64_t m, int64_t k, int64_t n, bool bf16,
                                                      int64_t ldy);

// True when the CPU has native bf16 (AVX512-BF16 or AMX, within the ISA cap) and oneDNN can
// create a bf16 matmul primitive here (probed once).
bool bf16_matmul_available();

}  // namespace moeserve::onednn
