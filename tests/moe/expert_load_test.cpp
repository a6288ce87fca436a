// Expert load statistics: the sliding window over real steps (dummy steps excluded) and vLLM's
// balancedness.
#include "moe/expert_load.h"

#include <vector>

#include "gtest/gtest.h"

namespace moeserve {
namespace {

std::vector<int64_t> sum_of(const ExpertLoadWindow& w) {
  return {w.window_sum().begin(), w.window_sum().end()};
}

TEST(ExpertLoadWindow, KeepsTheLastRealStepsAndDropsDummies) {
  ExpertLoadWindow w(/*num_layers=*/2, /*num_experts=*/3, /*window_size=*/2);
  auto step = [&](std::vector<int64_t> layer0, std::vector<int64_t> layer1, bool dummy) {
    for (int e = 0; e < 3; ++e) {
      w.step_counters(0)[e] += layer0[e];
      w.step_counters(1)[e] += layer1[e];
    }
    w.end_step(dummy);
  };
  step({1, 0, 2}, {0, 3, 0}, false);
  EXPECT_EQ(sum_of(w), (std::vector<int64_t>{1, 0, 2, 0, 3, 0}));
  // A dummy step's counts (had any been made) neither enter nor advance the window.
  step({50, 50, 50}, {50, 50, 50}, true);
  EXPECT_EQ(sum_of(w), (std::vector<int64_t>{1, 0, 2, 0, 3, 0}));
  EXPECT_EQ(w.steps_in_window(), 1);
  step({0, 4, 0}, {1, 1, 1}, false);
  EXPECT_EQ(sum_of(w), (std::vector<int64_t>{1, 4, 2, 1, 4, 1}));
  // The window holds two steps: the first leaves.
  step({0, 0, 7}, {0, 0, 0}, false);
  EXPECT_EQ(sum_of(w), (std::vector<int64_t>{0, 4, 7, 1, 1, 1}));
  EXPECT_EQ(w.steps_in_window(), 2);
  EXPECT_EQ(w.steps_recorded(), 3);
}

TEST(ExpertLoad, BalancednessIsMeanOverMax) {
  // vLLM's test vector [[100, 0, 0, 0], [100, 0, 0, 0]] (two layers, four ranks): 0.25 per
  // layer, and 0.25 for the layers' sum (mean 50 / max 200).
  EXPECT_DOUBLE_EQ(balancedness(std::vector<int64_t>{100, 0, 0, 0}), 0.25);
  EXPECT_DOUBLE_EQ(balancedness(std::vector<int64_t>{200, 0, 0, 0}), 0.25);
  EXPECT_DOUBLE_EQ(balancedness(std::vector<int64_t>{5, 5}), 1.0);
  EXPECT_DOUBLE_EQ(balancedness(std::vector<int64_t>{0, 0}), 1.0);
}

TEST(ExpertLoad, SnapshotSumsExpertsOfEachRank) {
  // 4 experts on 2 ranks, contiguous: rank 0 holds experts 0-1, rank 1 experts 2-3.
  const std::vector<int64_t> tokens = {10, 30, 0, 20, /*layer 2:*/ 5, 5, 5, 5};
  const ExpertLoadSnapshot s = make_expert_load_snapshot(tokens, {1, 2}, 4, 2, 100, 7);
  ASSERT_EQ(s.rank_tokens.size(), 2u);
  EXPECT_EQ(s.rank_tokens[0], (std::vector<int64_t>{40, 20}));
  EXPECT_DOUBLE_EQ(s.balancedness[0], 30.0 / 40.0);
  EXPECT_DOUBLE_EQ(s.balancedness[1], 1.0);
  EXPECT_EQ(s.tokens[0], (std::vector<int64_t>{10, 30, 0, 20}));
  EXPECT_EQ(s.layer_ids, (std::vector<int>{1, 2}));
  EXPECT_EQ(s.steps_in_window, 7);
}

}  // namespace
}  // namespace moeserve
