#include "model/step_plan.h"

#include <algorithm>

namespace moeserve {

StepPlan StepPlan::build(const ForwardBatch& batch, int64_t block_size) {
  StepPlan p;
  const int64_t T = batch.num_tokens(), B = block_size;
  p.num_tokens = T;
  p.positions.resize(static_cast<size_t>(T));
  p.slots.resize(static_cast<size_t>(T));
  for (size_t i = 0; i < batch.seqs.size(); ++i) {
    const SeqChunk& s = batch.seqs[i];
    const int32_t* table = batch.block_tables.data() + s.block_table_begin;
    for (int64_t j = 0; j < s.num_tokens; ++j) {
      const int64_t pos = s.num_computed + j;
      p.positions[s.token_begin + j] = static_cast<int32_t>(pos);
      p.slots[s.token_begin + j] = int64_t{table[pos / B]} * B + pos % B;
    }
    if (s.num_tokens == 1) {
      p.decode_seqs.push_back(static_cast<int32_t>(i));
      p.decode_rows.push_back(s.token_begin);
    } else {
      const int64_t S = s.num_computed + s.num_tokens;
      p.prefills.push_back(
          {static_cast<int32_t>(i), static_cast<int64_t>(p.context_slots.size()), S});
      for (int64_t pos = 0; pos < S; ++pos) {
        p.context_slots.push_back(int64_t{table[pos / B]} * B + pos % B);
      }
      p.max_context = std::max(p.max_context, S);
    }
    if (s.need_logits) p.logit_rows.push_back(s.token_begin + s.num_tokens - 1);
  }
  return p;
}

}  // namespace moeserve
