#include "core/human_size.h"

#include <gtest/gtest.h>

namespace moeserve {
namespace {

TEST(HumanSizeTest, HumanIntFollowsVllm) {
  EXPECT_EQ(*parse_human_int("1k"), 1000);
  EXPECT_EQ(*parse_human_int("1K"), 1024);
  EXPECT_EQ(*parse_human_int("25.6k"), 25600);
  EXPECT_EQ(*parse_human_int("2m"), 2000000);
  EXPECT_EQ(*parse_human_int("2M"), 2097152);
  EXPECT_EQ(*parse_human_int(" 4096 "), 4096);
  EXPECT_EQ(parse_human_int("1.5K").status().message(),
            "invalid size '1.5K': Decimals are not allowed with binary suffixes like K. Did you "
            "mean to use 1.5k instead?");
  EXPECT_FALSE(parse_human_int("1.5").ok());
  EXPECT_FALSE(parse_human_int("abc").ok());
  EXPECT_FALSE(parse_human_int("4GiB").ok());
  EXPECT_FALSE(parse_human_int("").ok());
  EXPECT_FALSE(parse_human_int("99999999999999999999").ok());
}

TEST(HumanSizeTest, MemorySizes) {
  EXPECT_EQ(*parse_memory_size("4GiB"), int64_t{4} << 30);
  EXPECT_EQ(*parse_memory_size("512MiB"), int64_t{512} << 20);
  EXPECT_EQ(*parse_memory_size("1.5GiB"), int64_t{3} << 29);
  EXPECT_EQ(*parse_memory_size("2GB"), 2000000000);
  EXPECT_EQ(*parse_memory_size("4 GiB"), int64_t{4} << 30);
  EXPECT_EQ(*parse_memory_size("4G"), int64_t{4} << 30);
  EXPECT_EQ(*parse_memory_size("123B"), 123);
  EXPECT_EQ(*parse_memory_size("1000"), 1000);
  EXPECT_FALSE(parse_memory_size("4XB").ok());
  EXPECT_FALSE(parse_memory_size("GiB").ok());
}

}  // namespace
}  // namespace moeserve
