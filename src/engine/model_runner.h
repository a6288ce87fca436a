// Runs one scheduled step on the model: turns the plain-data SchedulerOutput into a
// ForwardBatch over the paged latent cache (whose block ids are the KV-cache manager's) and
// returns the logits of the requests that sample this step.
// Thread-safety: the engine-loop thread only.
#pragma once

#include <string>
#include <vector>

#include "engine/scheduler.h"
#include "model/deepseek.h"
#include "model/latent_cache.h"

namespace moeserve::engine {

class ModelRunner {
 public:
  ModelRunner(DeepseekModel* model, LatentCache cache) : model_(model), cache_(std::move(cache)) {}

  // logits: [rows, vocab]; row_ids[i] is the request whose logits are row i.
  // `max_tokens_across_dp` >= 0: data-parallel lockstep (the model's MoE layers are
  // collective): the forward runs even when `step` is empty (a dummy batch), and the agreed
  // per-rank maximum token count is handed to the model.
  Status execute(const SchedulerOutput& step, std::vector<float>* logits,
                 std::vector<std::string>* row_ids, int64_t max_tokens_across_dp = -1);

  const LatentCache& cache() const { return cache_; }

 private:
  DeepseekModel* model_;
  LatentCache cache_;
};

}  // namespace moeserve::engine
