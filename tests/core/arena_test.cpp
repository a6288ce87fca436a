#include "core/arena.h"

#include <cstdint>
#include <cstring>

#include "gtest/gtest.h"

namespace moeserve {
namespace {

TEST(Arena, PiecesAreAlignedAndDisjoint) {
  Arena a;
  std::span<float> x = a.alloc<float>(3);
  std::span<int32_t> y = a.alloc<int32_t>(5);
  ASSERT_EQ(x.size(), 3u);
  ASSERT_EQ(y.size(), 5u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(x.data()) % 64, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(y.data()) % 64, 0u);
  EXPECT_GE(reinterpret_cast<uintptr_t>(y.data()),
            reinterpret_cast<uintptr_t>(x.data() + x.size()));
  EXPECT_TRUE(a.alloc<float>(0).empty());
}

TEST(Arena, ScopeReleasesItsPiecesForReuse) {
  Arena a;
  std::span<float> keep = a.alloc<float>(16);
  float* first = nullptr;
  {
    Arena::Scope s(a);
    first = a.alloc<float>(1000).data();
  }
  {
    Arena::Scope s(a);
    EXPECT_EQ(a.alloc<float>(1000).data(), first);  // the next layer reuses the memory
  }
  EXPECT_EQ(keep.size(), 16u);
  EXPECT_EQ(a.high_water(), 64u + 4032u);  // 16 and 1000 floats, each rounded to 64 bytes
}

TEST(Arena, GrowsWithoutMovingLivePiecesAndConsolidatesOnReset) {
  Arena a;
  const int64_t big = (int64_t{1} << 20) / 4;  // one minimum block of floats
  std::span<float> p = a.alloc<float>(big);
  std::memset(p.data(), 0x5a, p.size_bytes());
  std::span<float> q = a.alloc<float>(big * 3);  // does not fit: a second block
  std::memset(q.data(), 0x11, q.size_bytes());
  for (size_t i = 0; i < p.size(); i += 4096) {
    uint32_t bits;
    std::memcpy(&bits, &p[i], 4);
    ASSERT_EQ(bits, 0x5a5a5a5au);
  }
  const size_t high = a.high_water();
  EXPECT_GE(high, size_t(big * 4 * 4));
  a.reset();
  // One block of the high-water size now serves the same step without growing.
  const size_t cap = a.capacity();
  EXPECT_GE(cap, high);
  a.alloc<float>(big);
  a.alloc<float>(big * 3);
  EXPECT_EQ(a.capacity(), cap);
}

}  // namespace
}  // namespace moeserve
