// Logit tolerances of the model tests, per precision path: the largest |got - want| over a
// logits row, relative to the row's largest |want|.
//
// Each comparison replays one side's expert choices into the other (DeepseekModel::forward's
// `replay`), because a tiny random model's gate has near ties: a rounding-sized difference in
// a layer's input flips some top-k choices (seen: 5 of 148 in the first MoE layer between the
// f32- and bf16-activation paths), and a flipped expert moves logits by 5-25% of their range —
// far outside any rounding bound, and as large as a real fault. With the routing fixed, what
// is left is arithmetic, and the bound can be tight:
//  - f32 activations (F32 weights; BF16 weights below the avx512_bf16 level): paths differ in
//    f32 summation order only. Seen at most 1.2e-6 against the float64 reference and 7.4e-7
//    between expert-parallel and single-process runs: tolerance 1e-5.
//  - bf16 activations (BF16 weights, FP8 held as BF16, at avx512_bf16 and amx; see
//    kernels/linear.h): every linear input is rounded to bf16 (relative 2^-9). Against the
//    float64 reference, which does not round, about a dozen roundings per layer add up: seen
//    at most 9.3e-3, tolerance 2e-2. Between two runs that both round (expert-parallel
//    against single-process), a summation-order difference upstream can still move an
//    element to the neighbouring bf16 value: seen at most 2.3e-3, tolerance 5e-3.
// Measured on the tiny presets (3 layers) on an AMD EPYC with AVX512-BF16, every ISA level.
// The path-dependent rounding that once failed these tests on AVX512-BF16 CPUs moved logits
// by 24% of their range, through flipped expert choices.
#pragma once

#include "core/dtype.h"
#include "kernels/linear.h"

namespace moeserve::testing {

// `weights`: the dtype the model computes its linears from (DeepseekModel::weight_dtype()).
// Fast model against the float64 reference.
inline double reference_tolerance(DType weights) {
  return linear_rounds_activations(weights) ? 2e-2 : 1e-5;
}

// Two runs of the fast model that take different kernel paths (row counts, backends, ranks).
inline double path_tolerance(DType weights) {
  return linear_rounds_activations(weights) ? 5e-3 : 1e-5;
}

}  // namespace moeserve::testing
