#include "cli/offline_engine.h"

#include <algorithm>

#include "absl/synchronization/mutex.h"
#include "model/deepseek.h"

namespace moeserve {
namespace {

// Collects one request's outputs and wakes the waiting caller when it finishes.
class WaitingSink final : public engine::OutputSink {
 public:
  explicit WaitingSink(std::function<void(const engine::EngineOutput&)> on_output)
      : on_output_(std::move(on_output)) {}

  void on_output(engine::EngineOutput o) ABSL_LOCKS_EXCLUDED(mu_) override {
    if (on_output_) on_output_(o);
    absl::MutexLock lk(&mu_);
    result_.token_ids.insert(result_.token_ids.end(), o.token_ids.begin(), o.token_ids.end());
    result_.text += o.text;
    for (auto& l : o.logprobs) result_.logprobs.push_back(std::move(l));
    result_.num_prompt_tokens = o.num_prompt_tokens;
    if (!o.finished) return;
    result_.finish_reason = o.finish_reason.value_or(engine::FinishReason::kError);
    if (o.phase_times) result_.times = *o.phase_times;
    error_ = o.error;
    done_ = true;
  }

  StatusOr<OfflineResult> wait() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lk(&mu_, absl::Condition(&done_));
    if (result_.finish_reason == engine::FinishReason::kError ||
        result_.finish_reason == engine::FinishReason::kAbort) {
      return absl::InternalError(error_.empty() ? "the engine aborted the request" : error_);
    }
    return std::move(result_);
  }

 private:
  std::function<void(const engine::EngineOutput&)> on_output_;
  absl::Mutex mu_;
  OfflineResult result_ ABSL_GUARDED_BY(mu_);
  std::string error_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

StatusOr<std::unique_ptr<engine::LlmEngine>> make_offline_engine(
    std::unique_ptr<DeepseekModel> model, std::shared_ptr<const Tokenizer> tokenizer,
    const OfflineEngineOptions& options) {
  const ModelConfig& mc = model->config();
  const int64_t len = std::clamp<int64_t>(options.max_model_len, 1, mc.max_position_embeddings);
  engine::EngineConfig ec;
  ec.scheduler.max_model_len = static_cast<int32_t>(len);
  ec.scheduler.max_num_seqs = 1;
  ec.scheduler.max_num_batched_tokens =
      std::max<int32_t>(options.max_num_batched_tokens, ec.scheduler.max_num_seqs);
  ec.cache.enable_prefix_caching = options.enable_prefix_caching;
  // One sequence of max_model_len, plus the null block.
  ec.cache.num_blocks = static_cast<int32_t>((len + ec.cache.block_size - 1) / ec.cache.block_size + 1);
  ec.generation_defaults = options.generation_defaults;
  return engine::LlmEngine::create(ec, std::move(model), std::move(tokenizer));
}

StatusOr<OfflineResult> generate_one(
    engine::LlmEngine& engine, const std::string& request_id, const engine::RequestInputs& inputs,
    const std::function<void(const engine::EngineOutput&)>& on_output) {
  MS_ASSIGN_OR_RETURN(engine::SamplingParams params, engine.input_processor().process(inputs));
  auto sink = std::make_shared<WaitingSink>(on_output);
  engine::NewRequest r;
  r.request_id = request_id;
  r.prompt_token_ids = inputs.prompt_token_ids;
  r.params = std::move(params);
  r.sink = sink;
  MS_RETURN_IF_ERROR(engine.add_request(std::move(r)));
  return sink->wait();
}

}  // namespace moeserve
