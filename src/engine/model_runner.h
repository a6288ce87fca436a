// Runs one scheduled step on the model and samples it (vLLM's GPUModelRunner): turns the
// plain-data SchedulerOutput into a ForwardBatch over the paged latent cache (whose block ids
// are the KV-cache manager's), runs the forward, and samples one token for every request whose
// logits the step produced. The engine only orchestrates: it never sees logits.
// Thread-safety: the engine-loop thread only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "engine/request.h"
#include "engine/sampler.h"
#include "engine/scheduler.h"
#include "model/deepseek.h"
#include "model/latent_cache.h"

namespace moeserve::engine {

// What one step sampled (vLLM's ModelRunnerOutput): one token per request that needed logits,
// in scheduling order.
struct ModelRunnerOutput {
  std::vector<std::string> req_ids;
  std::vector<int32_t> sampled_token_ids;              // [req_ids.size()]
  std::vector<std::optional<TokenLogprobs>> logprobs;  // [req_ids.size()], set when asked for
};

class ModelRunner {
 public:
  // `sampler_seed` fixes the sampler's shared random source (tests).
  ModelRunner(DeepseekModel* model, LatentCache cache, std::optional<uint64_t> sampler_seed)
      : model_(model), cache_(std::move(cache)), sampler_(sampler_seed) {}

  // Resolves a scheduled request id to the scheduler's request (sampling parameters, token
  // history, its generator); null: the request is gone and is not sampled.
  using RequestLookup = absl::FunctionRef<Request*(const std::string&)>;

  // Runs `step` and samples it into `out` (overwritten).
  // `max_tokens_across_dp` >= 0: data-parallel lockstep (the model's MoE layers are
  // collective): the forward runs even when `step` is empty (a dummy batch), and the agreed
  // per-rank maximum token count is handed to the model.
  Status execute(const SchedulerOutput& step, RequestLookup requests, ModelRunnerOutput* out,
                 int64_t max_tokens_across_dp = -1);

  const LatentCache& cache() const { return cache_; }

 private:
  DeepseekModel* model_;
  LatentCache cache_;
  Sampler sampler_;
  std::vector<float> logits_;  // [rows, vocab], reused across steps
};

}  // namespace moeserve::engine
