#include "engine/model_runner.h"

namespace moeserve::engine {

Status ModelRunner::execute(const SchedulerOutput& step, std::vector<float>* logits,
                            std::vector<std::string>* row_ids) {
  ForwardBatch batch;
  row_ids->clear();
  for (const ScheduledRequest& r : step.scheduled) {
    batch.add(r.token_ids, r.num_computed_tokens, r.block_ids, r.needs_logits);
    if (r.needs_logits) row_ids->push_back(r.request_id);
  }
  if (batch.num_tokens() == 0) {
    logits->clear();
    return absl::OkStatus();
  }
  return model_->forward(batch, cache_, logits);
}

}  // namespace moeserve::engine
