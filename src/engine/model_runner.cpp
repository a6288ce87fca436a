#include "engine/model_runner.h"

#include <span>

namespace moeserve::engine {

Status ModelRunner::execute(const SchedulerOutput& step, RequestLookup requests,
                            ModelRunnerOutput* out, int64_t max_tokens_across_dp) {
  *out = ModelRunnerOutput{};
  ForwardBatch batch;
  std::vector<const std::string*> rows;  // the request of each logits row
  for (const ScheduledRequest& r : step.scheduled) {
    batch.add(r.token_ids, r.num_computed_tokens, r.block_ids, r.needs_logits);
    if (r.needs_logits) rows.push_back(&r.request_id);
  }
  batch.max_tokens_across_dp = max_tokens_across_dp;
  if (batch.num_tokens() == 0 && max_tokens_across_dp < 0) return absl::OkStatus();
  MS_RETURN_IF_ERROR(model_->forward(batch, cache_, &logits_));

  const int64_t V = model_->config().vocab_size;
  for (size_t i = 0; i < rows.size(); ++i) {
    Request* r = requests(*rows[i]);
    if (r == nullptr) continue;
    SampleInput in;
    in.logits = std::span<const float>(logits_.data() + i * V, static_cast<size_t>(V));
    in.params = &r->sampling_params;
    in.prompt_token_ids = r->prompt_token_ids;
    in.output_token_ids = r->output_token_ids;
    in.eos_token_id = r->eos_token_id;
    in.generator = r->generator ? &*r->generator : nullptr;
    SampleResult res = sampler_.sample(in);
    out->req_ids.push_back(*rows[i]);
    out->sampled_token_ids.push_back(res.token_id);
    if (res.logprob) {
      out->logprobs.push_back(
          TokenLogprobs{res.token_id, *res.logprob, res.rank, std::move(res.top_logprobs)});
    } else {
      out->logprobs.push_back(std::nullopt);
    }
  }
  return absl::OkStatus();
}

}  // namespace moeserve::engine
