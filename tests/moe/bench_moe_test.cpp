// Smoke test of the `bench moe` library on a tiny shape: it forms groups, runs every backend
// and exits 0; a bad option is rejected.
#include "moe/bench_moe.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace moeserve {
namespace {

int run(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return bench_moe_main(static_cast<int>(argv.size()), argv.data());
}

TEST(BenchMoe, TinyRunSucceeds) {
  EXPECT_EQ(run({"moe", "--ep",
                 "2",   "--hidden",
                 "64",  "--topk",
                 "2",   "--latency-tokens",
                 "1,4", "--bandwidth-tokens",
                 "40",  "--num-experts",
                 "8",   "--max-tokens-per-rank",
                 "16",  "--latency-iters",
                 "2",   "--bandwidth-iters",
                 "1",   "--csv"}),
            0);
}

TEST(BenchMoe, RejectsIndivisibleExperts) {
  EXPECT_NE(run({"moe", "--ep", "3", "--num-experts", "8"}), 0);
}

}  // namespace
}  // namespace moeserve
