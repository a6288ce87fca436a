#include "core/tensor.h"

#include "gtest/gtest.h"

namespace moeserve {
namespace {

TEST(Tensor, EmptyIsZeroedAndAligned) {
  Tensor t = Tensor::empty(DType::kF32, {3, 5});
  EXPECT_EQ(t.numel(), 15);
  EXPECT_EQ(t.nbytes(), 60u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % 64, 0u);
  for (int i = 0; i < 15; ++i) EXPECT_EQ(t.data<float>()[i], 0.0f);
}

TEST(Tensor, SliceRowsViewsSameMemory) {
  Tensor t = Tensor::empty(DType::kBF16, {4, 3});
  Tensor s = t.slice_rows(1, 3);
  EXPECT_EQ(s.dim(0), 2);
  EXPECT_EQ(s.data<uint16_t>(), t.data<uint16_t>() + 3);
  EXPECT_EQ(t.reshape({12}).numel(), 12);
  EXPECT_EQ(t.shape_string(), "[4, 3]");
}

}  // namespace
}  // namespace moeserve
