#include "core/dtype.h"

#include <cmath>

namespace moeserve {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::kF64:
    case DType::kI64:
      return 8;
    case DType::kF32:
    case DType::kI32:
      return 4;
    case DType::kF16:
    case DType::kBF16:
      return 2;
    case DType::kF8E4M3:
    case DType::kU8:
    case DType::kI8:
    case DType::kBool:
      return 1;
  }
  return 0;
}

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
    case DType::kF8E4M3: return "F8_E4M3";
    case DType::kF64: return "F64";
    case DType::kI32: return "I32";
    case DType::kI64: return "I64";
    case DType::kU8: return "U8";
    case DType::kI8: return "I8";
    case DType::kBool: return "BOOL";
  }
  return "?";
}

std::optional<DType> dtype_from_name(std::string_view n) {
  if (n == "F32") return DType::kF32;
  if (n == "F16") return DType::kF16;
  if (n == "BF16") return DType::kBF16;
  if (n == "F8_E4M3") return DType::kF8E4M3;
  if (n == "F64") return DType::kF64;
  if (n == "I32") return DType::kI32;
  if (n == "I64") return DType::kI64;
  if (n == "U8") return DType::kU8;
  if (n == "I8") return DType::kI8;
  if (n == "BOOL") return DType::kBool;
  return std::nullopt;
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = (h >> 15) & 1u;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t man = h & 0x3ffu;
  float v;
  if (exp == 0) {
    v = std::ldexp(static_cast<float>(man), -24);
  } else if (exp == 31) {
    v = man ? NAN : INFINITY;
  } else {
    v = std::ldexp(static_cast<float>(man | 0x400u), static_cast<int>(exp) - 25);
  }
  return sign ? -v : v;
}

uint16_t f32_to_f16(float f) {
  const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  float a = std::fabs(f);
  if (std::isnan(f)) return 0x7e00;
  if (a >= 65520.0f) return sign | 0x7c00;
  if (a < std::ldexp(1.0f, -24) * 0.5f) return sign;
  int e;
  std::frexp(a, &e);  // a = m * 2^e, m in [0.5,1)
  int exp = e - 1 + 15;
  if (exp <= 0) {  // subnormal: value = man * 2^-24
    float m = std::nearbyint(a * std::ldexp(1.0f, 24));
    return sign | static_cast<uint16_t>(m);
  }
  float m = std::nearbyint(std::ldexp(a, -(e - 1)) * 1024.0f);  // in [1024, 2048]
  if (m >= 2048.0f) {
    m = 1024.0f;
    ++exp;
  }
  if (exp >= 31) return sign | 0x7c00;
  return sign | static_cast<uint16_t>(exp << 10) | static_cast<uint16_t>(static_cast<int>(m) - 1024);
}

float fp8e4m3_to_f32(uint8_t v) {
  const bool neg = v & 0x80;
  const int exp = (v >> 3) & 0xf;
  const int man = v & 0x7;
  if (exp == 0xf && man == 0x7) return NAN;
  float r = exp == 0 ? std::ldexp(static_cast<float>(man), -9)
                     : std::ldexp(static_cast<float>(8 + man), exp - 10);
  return neg ? -r : r;
}

uint8_t f32_to_fp8e4m3(float f) {
  if (std::isnan(f)) return 0x7f;
  const uint8_t sign = std::signbit(f) ? 0x80 : 0;
  float a = std::fabs(f);
  if (a >= 448.0f) return sign | 0x7e;
  if (a < std::ldexp(1.0f, -10)) return sign;  // below half the smallest subnormal
  int e;
  std::frexp(a, &e);
  int exp = e - 1 + 7;
  if (exp <= 0) {  // subnormal: value = man * 2^-9
    int m = static_cast<int>(std::nearbyint(a * 512.0f));
    if (m >= 8) return sign | 0x08;
    return sign | static_cast<uint8_t>(m);
  }
  int m = static_cast<int>(std::nearbyint(std::ldexp(a, -(e - 1)) * 8.0f));  // [8,16]
  if (m >= 16) {
    m = 8;
    ++exp;
  }
  if (exp > 15 || (exp == 15 && m - 8 == 7)) return sign | 0x7e;
  return sign | static_cast<uint8_t>(exp << 3) | static_cast<uint8_t>(m - 8);
}

}  // namespace moeserve
