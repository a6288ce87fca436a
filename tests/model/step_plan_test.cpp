#include "model/step_plan.h"

#include <vector>

#include "gtest/gtest.h"

namespace moeserve {
namespace {

TEST(StepPlan, PositionsSlotsAndThePrefillDecodeSplit) {
  // Block size 4. A decode at position 5 (blocks {7, 2}), a 3-token chunk after 2 cached
  // tokens (blocks {9, 1}) that asks for no logits, and a fresh 2-token prompt (block {4}).
  ForwardBatch b;
  b.add({11}, 5, {7, 2}, true);
  b.add({12, 13, 14}, 2, {9, 1}, false);
  b.add({15, 16}, 0, {4}, true);
  const StepPlan p = StepPlan::build(b, 4);
  EXPECT_EQ(p.num_tokens, 6);
  EXPECT_EQ(p.positions, (std::vector<int32_t>{5, 2, 3, 4, 0, 1}));
  // slot = block * 4 + position % 4
  EXPECT_EQ(p.slots, (std::vector<int64_t>{2 * 4 + 1, 9 * 4 + 2, 9 * 4 + 3, 1 * 4 + 0, 16, 17}));
  EXPECT_EQ(p.decode_seqs, (std::vector<int32_t>{0}));
  EXPECT_EQ(p.decode_rows, (std::vector<int64_t>{0}));
  ASSERT_EQ(p.prefills.size(), 2u);
  EXPECT_EQ(p.prefills[0].seq, 1);
  EXPECT_EQ(p.prefills[0].num_context, 5);
  EXPECT_EQ(p.prefills[1].seq, 2);
  EXPECT_EQ(p.prefills[1].num_context, 2);
  EXPECT_EQ(p.max_context, 5);
  const std::vector<int64_t> ctx0(p.context_slots.begin() + p.prefills[0].context_begin,
                                  p.context_slots.begin() + p.prefills[0].context_begin + 5);
  EXPECT_EQ(ctx0, (std::vector<int64_t>{36, 37, 38, 39, 4}));
  EXPECT_EQ(p.logit_rows, (std::vector<int64_t>{0, 5}));
}

TEST(StepPlan, EmptyBatch) {
  const StepPlan p = StepPlan::build(ForwardBatch{}, 16);
  EXPECT_EQ(p.num_tokens, 0);
  EXPECT_TRUE(p.positions.empty());
  EXPECT_TRUE(p.prefills.empty());
  EXPECT_TRUE(p.decode_rows.empty());
  EXPECT_TRUE(p.logit_rows.empty());
}

}  // namespace
}  // namespace moeserve
