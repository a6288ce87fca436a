#include "core/dtype.h"

#include <cmath>

#include "gtest/gtest.h"

namespace moeserve {
namespace {

TEST(DType, Bf16RoundTripsRepresentableValues) {
  for (float v : {0.0f, 1.0f, -2.5f, 3.140625f, 65536.0f, -1e-3f}) {
    const float back = bf16_to_f32(f32_to_bf16(v));
    EXPECT_NEAR(back, v, std::fabs(v) * 1.0f / 128.0f) << v;
  }
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f)), 1.0f);
  // Round to nearest even: 1 + 2^-8 is halfway between 1 and 1 + 2^-7.
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + std::ldexp(1.0f, -8))), 1.0f);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
}

TEST(DType, Fp8E4M3CoversEveryCode) {
  int finite = 0;
  for (int c = 0; c < 256; ++c) {
    const float v = fp8e4m3_to_f32(static_cast<uint8_t>(c));
    if (std::isnan(v)) {
      EXPECT_EQ(c & 0x7f, 0x7f);
      continue;
    }
    ++finite;
    const uint8_t back = f32_to_fp8e4m3(v);
    if (v == 0.0f) {
      EXPECT_EQ(back & 0x7f, 0);
    } else {
      EXPECT_EQ(back, c) << "code " << c << " value " << v;
    }
  }
  EXPECT_EQ(finite, 254);
  EXPECT_EQ(fp8e4m3_to_f32(0x7e), 448.0f);
  EXPECT_EQ(fp8e4m3_to_f32(f32_to_fp8e4m3(1e6f)), 448.0f);
  EXPECT_EQ(fp8e4m3_to_f32(0x01), std::ldexp(1.0f, -9));
}

TEST(DType, F16Conversions) {
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(1e9f), 0x7c00);
  for (int c = 0; c < 0x7c00; c += 7) EXPECT_EQ(f32_to_f16(f16_to_f32(c)), c) << c;
}

TEST(DType, NamesRoundTrip) {
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kF8E4M3, DType::kI64}) {
    EXPECT_EQ(dtype_from_name(dtype_name(t)), t);
  }
  EXPECT_FALSE(dtype_from_name("F4").has_value());
}

}  // namespace
}  // namespace moeserve
