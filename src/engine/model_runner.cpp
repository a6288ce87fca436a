#include "engine/model_runner.h"

namespace moeserve::engine {

Status ModelRunner::execute(const SchedulerOutput& step, std::vector<float>* logits,
                            std::vector<std::string>* row_ids, int64_t max_tokens_across_dp) {
  ForwardBatch batch;
  row_ids->clear();
  for (const ScheduledRequest& r : step.scheduled) {
    batch.add(r.token_ids, r.num_computed_tokens, r.block_ids, r.needs_logits);
    if (r.needs_logits) row_ids->push_back(r.request_id);
  }
  batch.max_tokens_across_dp = max_tokens_across_dp;
  if (batch.num_tokens() == 0 && max_tokens_across_dp < 0) {
    logits->clear();
    return absl::OkStatus();
  }
  return model_->forward(batch, cache_, logits);
}

}  // namespace moeserve::engine
