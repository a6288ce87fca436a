// Element types and scalar conversions (bf16, f16, fp8 e4m3) shared by every layer.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace moeserve {

enum class DType : uint8_t { kF32, kF16, kBF16, kF8E4M3, kF64, kI32, kI64, kU8, kI8, kBool };

// Bytes per element.
size_t dtype_size(DType t);
// safetensors spelling: "F32", "BF16", "F8_E4M3", ...
std::string_view dtype_name(DType t);
std::optional<DType> dtype_from_name(std::string_view name);

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round to nearest even; NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// OCP FP8 E4M3 ("e4m3fn"): bias 7, no infinities, 0x7f/0xff are NaN, max 448.
float fp8e4m3_to_f32(uint8_t v);
// Saturates to +-448; round to nearest even.
uint8_t f32_to_fp8e4m3(float f);

}  // namespace moeserve
