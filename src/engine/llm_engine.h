// The engine: one thread (the engine loop) owns the scheduler, the KV cache, the model and the
// detokenizers; HTTP threads talk to it only through add_request()/abort() (an input queue)
// and the OutputSink each request brings (a stream out). Each loop iteration: drain the input
// queue, schedule a step, have the model runner run and sample it, update the scheduler,
// detokenize and check stop strings, and hand each request its delta.
//
// Thread-safety: every public method may be called from any thread; OutputSink callbacks run
// on the engine-loop thread and must not block.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "core/status.h"
#include "engine/dp_coordinator.h"
#include "engine/finish_reason.h"
#include "engine/input_processor.h"
#include "engine/kv_events.h"
#include "engine/sampler.h"
#include "engine/scheduler.h"
#include "model/config.h"
#include "moe/expert_load.h"
#include "tokenizer/tokenizer.h"

namespace moeserve {
class DeepseekModel;
}

namespace moeserve::engine {

class ExpertLoadStats;
class ModelRunner;

struct EngineConfig {
  SchedulerConfig scheduler;
  KVCacheConfig cache;  // num_blocks 0: derived from kv_cache_memory_bytes
  int64_t kv_cache_memory_bytes = 0;
  std::optional<uint64_t> sampler_seed;  // fixes the shared random source (tests)
  // generation_config.json's defaults and EOS ids (GenerationDefaults::load), used by the
  // engine's InputProcessor.
  GenerationDefaults generation_defaults;
  // Data-parallel lockstep, used when the model was loaded with expert parallelism.
  DpCoordinatorOptions data_parallel;
  // Engine steps over which expert load statistics are kept (EPLB's window_size).
  int expert_load_window = 1000;
};

// What one step produced for one request. Text is only what is safe to show: never half a
// UTF-8 character, never a prefix of a stop string that may still match.
// Where a finished request spent its time inside the engine (vLLM's engine-core timestamps:
// queued when the engine took it, scheduled the first time, first and last new token).
struct RequestPhaseTimes {
  double queue_seconds = 0.0;      // queued → first scheduled
  double prefill_seconds = 0.0;    // first scheduled → first token
  double decode_seconds = 0.0;     // first token → last token
  double inference_seconds = 0.0;  // first scheduled → last token
};

struct EngineOutput {
  std::string request_id;
  std::vector<int32_t> token_ids;       // new tokens this step
  std::string text;                     // new text this step
  std::vector<TokenLogprobs> logprobs;  // one per new token (when requested)
  bool finished = false;
  std::optional<FinishReason> finish_reason;  // set when finished
  StopReason stop_reason;                     // stop token id or stop string; none for EOS
  int32_t num_prompt_tokens = 0;
  int32_t num_cached_tokens = 0;  // prefix-cache hit, in tokens
  int32_t num_output_tokens = 0;  // so far
  std::string error;              // set with FinishReason::kError
  // On the finished output of a request that produced a token.
  std::optional<RequestPhaseTimes> phase_times;
};

class OutputSink {
 public:
  virtual ~OutputSink() = default;
  // Called on the engine-loop thread, once per step with news, last with finished = true.
  virtual void on_output(EngineOutput output) = 0;
};

struct NewRequest {
  std::string request_id;
  std::vector<int32_t> prompt_token_ids;
  SamplingParams params;  // from input_processor().process(): complete and validated
  std::string cache_salt;
  std::shared_ptr<OutputSink> sink;
  // Set by add_request (when the engine took the request).
  std::chrono::steady_clock::time_point queued_at{};
};

// Counters and gauges for /metrics; counters are totals since start.
struct EngineStats {
  int32_t num_running = 0;
  int32_t num_waiting = 0;
  double kv_cache_usage = 0.0;
  int64_t num_preemptions = 0;
  int64_t prefix_cache_queries = 0;
  int64_t prefix_cache_hits = 0;
  // Block hashes in the prefix cache (at most one per KV block: bounded by num_gpu_blocks).
  int64_t prefix_cache_entries = 0;
  int64_t prompt_tokens = 0;
  int64_t generation_tokens = 0;
  int32_t num_gpu_blocks = 0;  // KV blocks (vLLM's label name), excluding the null block
  int32_t block_size = 0;
  int64_t steps = 0;
  std::vector<int32_t> iteration_tokens;  // tokens per step since the last stats() call
  // Data parallel (expert-parallel model): forwards run with no work of this rank to keep
  // the MoE exchanges in lockstep, and idle periods of the whole group.
  int64_t dp_dummy_steps = 0;
  int64_t dp_idle_waits = 0;
  // Tokens per logical expert over the last expert_load_window real steps, summed over the
  // expert-parallel group (null for a model without MoE layers).
  std::shared_ptr<const ExpertLoadSnapshot> expert_load;
};

// Data parallel + expert parallel: when the model was loaded with an expert-parallel group
// (ModelLoadOptions::expert_parallel), the engine is one rank of a data-parallel group: it
// owns its own requests, scheduler and KV cache, and steps in lockstep with the other ranks
// through a DpCoordinator over the model's group (a rank with nothing scheduled runs a dummy
// forward; when no rank has work, all sleep until one gets a request). Every rank's engine
// must be created (the group's ranks each run one). A failed peer, or a peer that hit an
// error or shut down, makes this engine unhealthy and fails its in-flight requests with the
// reason; nothing waits longer than the group's timeout. shutdown(true) keeps taking part in
// the lockstep until no rank has work; the other ranks then stop too (unhealthy). The group
// must outlive the engine.
class LlmEngine {
 public:
  // Takes ownership of the model; the tokenizer may be null (token-id-only serving).
  // `events` (may be null) gets the prefix cache's KV events on the engine-loop thread and
  // end_step() after every loop iteration; it must outlive the engine.
  static StatusOr<std::unique_ptr<LlmEngine>> create(EngineConfig config,
                                                     std::unique_ptr<DeepseekModel> model,
                                                     std::shared_ptr<const Tokenizer> tokenizer,
                                                     KVEventSink* events = nullptr);
  ~LlmEngine();
  LlmEngine(const LlmEngine&) = delete;
  LlmEngine& operator=(const LlmEngine&) = delete;

  // The engine's input processor: every caller builds a request's SamplingParams with
  // input_processor().process() before add_request.
  const InputProcessor& input_processor() const { return *input_processor_; }
  // Queues a request. Unavailable when the waiting queue is full or the engine is stopping;
  // InvalidArgument for a prompt the model cannot take (InputProcessor::check_prompt).
  Status add_request(NewRequest request);
  // Queues every request or none (the choices of one n > 1 request): the waiting-queue bound
  // is checked for all of them at once, so a request that does not fit leaves nothing behind.
  Status add_requests(std::vector<NewRequest> requests);
  // Aborts a request (client gone). Its sink gets a final output with FinishReason::kAbort.
  void abort(const std::string& request_id);
  EngineStats stats();
  // The latest expert load statistics (EngineStats::expert_load), without consuming stats().
  std::shared_ptr<const ExpertLoadSnapshot> expert_load() const;
  // False once the loop died on an internal error (the server answers /health with 503).
  bool healthy() const { return !dead_.load(); }
  // Stops accepting requests; with `drain` waits until in-flight requests finish.
  void shutdown(bool drain);

  const ModelConfig& model_config() const;
  int32_t max_model_len() const { return config_.scheduler.max_model_len; }
  const EngineConfig& config() const { return config_; }

 private:
  struct Tracked;  // per-request detokenizer + stop checker + sink
  // The checks add_request makes on a request before queueing it.
  Status check_new_request(const NewRequest& r) const;
  LlmEngine() = default;
  void loop();
  // The data-parallel loop (lockstep with the peers), used instead of loop() with EP.
  void dp_loop();
  // One scheduled step; false when nothing could be scheduled.
  Status step();
  // Runs a scheduled step (empty: a data-parallel dummy forward), samples and emits.
  Status run_step(const SchedulerOutput& so, int64_t max_tokens_across_dp);
  // Marks the engine dead and fails every in-flight and queued request with `st`.
  void die(const Status& st) ABSL_LOCKS_EXCLUDED(mu_);
  // Aborts every tracked request (stopping without draining).
  void abort_all();
  // Moves queued adds and aborts into the scheduler; returns false when told to stop now.
  bool drain_inputs() ABSL_LOCKS_EXCLUDED(mu_);
  // Wait conditions (absl::Condition re-evaluates them whenever mu_ is released): something
  // queued or a stop asked for; the plain loop also wakes for the scheduler's own work, which
  // only the waiting loop thread changes.
  bool has_input() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool has_input_or_work() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  struct Delivery {
    std::shared_ptr<OutputSink> sink;
    EngineOutput output;
  };
  // Detokenizes and stop-checks one request's new tokens; returns the delta for its sink.
  std::optional<Delivery> emit(const RequestOutput& out, std::vector<TokenLogprobs> logprobs);
  // The phases of a request that was scheduled and produced a token; nullopt otherwise.
  static std::optional<RequestPhaseTimes> phase_times(const Tracked& t);
  // Ends a request that never produced output (rejected or failed).
  void fail(Tracked& t, const std::string& id, FinishReason reason, const std::string& error);
  void publish_stats(const SchedulerOutput& step, int64_t new_tokens) ABSL_LOCKS_EXCLUDED(mu_);
  // Tells the KV event sink that an engine step ended.
  void end_event_step() {
    if (events_ != nullptr) events_->end_step();
  }

  EngineConfig config_;
  std::unique_ptr<DeepseekModel> model_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  std::unique_ptr<ModelRunner> runner_;
  std::optional<InputProcessor> input_processor_;  // set by create(), immutable after
  std::unique_ptr<DpCoordinator> dp_;     // set with an expert-parallel model
  std::unique_ptr<Scheduler> scheduler_;  // engine-loop thread only
  std::unique_ptr<ExpertLoadStats> expert_load_;  // see its header for threads
  KVEventSink* events_ = nullptr;         // not owned; engine-loop thread only
  // Live requests by id (engine-loop thread only).
  absl::flat_hash_map<std::string, std::unique_ptr<Tracked>> tracked_;

  // Guards the input queue and the published stats; the loop thread waits on it with
  // absl::Condition (no condition variable: absl::Mutex wakes a waiter whose condition became
  // true when the lock is released).
  absl::Mutex mu_;
  std::deque<NewRequest> pending_adds_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> pending_aborts_ ABSL_GUARDED_BY(mu_);
  EngineStats stats_ ABSL_GUARDED_BY(mu_);
  int32_t queued_ ABSL_GUARDED_BY(mu_) = 0;  // added but not yet taken by the loop
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_now_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<bool> dead_{false};
  std::thread thread_;
};

}  // namespace moeserve::engine
