#include "core/progress.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

namespace moeserve {
namespace {

std::vector<std::string> lines_of(std::FILE* f) {
  std::rewind(f);
  std::vector<std::string> out;
  char buf[256];
  while (std::fgets(buf, sizeof(buf), f) != nullptr) out.emplace_back(buf);
  return out;
}

TEST(ProgressBarTest, NonTerminalPrintsTenPercentSteps) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  {
    ProgressBar bar("loading", 1000, /*bytes=*/false, f);
    for (uint64_t done = 0; done <= 1000; ++done) bar.update(done);
  }  // destructor: the 100% line is already there, nothing more
  const std::vector<std::string> lines = lines_of(f);
  ASSERT_EQ(lines.size(), 11u);
  EXPECT_EQ(lines[0].rfind("loading   0% 0/1000", 0), 0u) << lines[0];
  EXPECT_EQ(lines[5].rfind("loading  50% 500/1000", 0), 0u) << lines[5];
  EXPECT_EQ(lines[10].rfind("loading 100% 1000/1000", 0), 0u) << lines[10];
  std::fclose(f);
}

TEST(ProgressBarTest, BytesAndUnfinishedWork) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  {
    ProgressBar bar("ckpt", 0, /*bytes=*/true, f);
    bar.update(512ull << 20, 2ull << 30);  // total learned on the first update
  }  // stopped at 25%: the destructor reports where it stopped
  const std::vector<std::string> lines = lines_of(f);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[0].find("25% 512.0 MiB/2.00 GiB"), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("25%"), std::string::npos) << lines[1];
  std::fclose(f);
}

}  // namespace
}  // namespace moeserve
