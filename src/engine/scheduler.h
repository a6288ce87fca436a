// The V1 scheduler (vllm/v1/core/sched/scheduler.py): continuous batching under a token
// budget with no prefill/decode phases. Each step every request advances
// num_computed_tokens toward num_tokens:
//   1. RUNNING requests, in order, get min(remaining, long_prefill_token_threshold,
//      budget, max_model_len - computed) tokens; when the KV cache cannot hold them the
//      last running request is preempted (blocks freed, recomputed later) until it fits.
//   2. WAITING requests, FCFS, only if nothing was preempted this step, up to
//      max_num_seqs running; prefix-cache hits skip their computed blocks.
// Chunked prefill falls out of the budget cap: an unfinished prefill stays RUNNING.
// The model runner sees only the plain-data SchedulerOutput.
//
// Thread-safety: none. One engine-loop thread owns the scheduler; HTTP threads reach it
// only through the engine's input queue.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "core/status.h"
#include "engine/kv_cache_manager.h"
#include "engine/request.h"

namespace moeserve::engine {

struct SchedulerConfig {
  int32_t max_num_batched_tokens = 2048;     // --max-num-batched-tokens: token budget per step
  int32_t max_num_seqs = 256;                // --max-num-seqs: running requests at most
  int32_t max_model_len = 0;                 // --max-model-len: prompt + output at most
  int32_t long_prefill_token_threshold = 0;  // > 0 caps one request's tokens per step
  bool enable_chunked_prefill = true;
  int32_t max_waiting_requests = 0;  // 0: unbounded; else can_accept() says false when full

  absl::Status validate() const;
};

// One request scheduled in a step.
struct ScheduledRequest {
  std::string request_id;
  std::vector<int32_t> token_ids;   // [num_scheduled_tokens] tokens to feed this step
  int32_t position_start = 0;       // position of token_ids[0]
  int32_t num_computed_tokens = 0;  // tokens with KV before this step (== position_start)
  std::vector<int32_t> block_ids;   // the request's whole block table
  bool needs_logits = false;        // last prompt chunk or decode: sample a token
  bool is_new = false;              // first scheduling or resumed after preemption
};

// Everything the model runner needs for one step (vLLM's SchedulerOutput).
struct SchedulerOutput {
  std::vector<ScheduledRequest> scheduled;  // running requests first, then admitted ones
  int32_t total_num_scheduled_tokens = 0;
  // Finished or aborted since the previous step: the runner drops their state.
  std::vector<std::string> finished_request_ids;
  // Preempted this step: their KV is gone; they come back with is_new.
  std::vector<std::string> preempted_request_ids;
};

// What one step produced for one request.
struct RequestOutput {
  std::string request_id;
  std::vector<int32_t> new_token_ids;
  bool finished = false;
  RequestStatus status = RequestStatus::kRunning;
  StopReason stop_reason;
  int32_t num_cached_tokens = 0;  // prefix-cache hit at first scheduling
};

struct SchedulerStats {
  int32_t num_running = 0;
  int32_t num_waiting = 0;
  double kv_cache_usage = 0.0;
  int64_t num_preemptions = 0;    // total so far
  PrefixCacheStats prefix_cache;  // since the previous stats() call
  int64_t prefix_cache_entries = 0;  // block hashes held by the prefix cache now
};

class Scheduler {
 public:
  static absl::StatusOr<std::unique_ptr<Scheduler>> create(const SchedulerConfig& config,
                                                           const KVCacheConfig& cache_config,
                                                           KVEventSink* sink = nullptr);
  Scheduler(const SchedulerConfig& config, std::unique_ptr<KVCacheManager> kv);

  // False when the waiting queue is at max_waiting_requests (the server answers 503).
  bool can_accept() const;
  // Queues a request. Fails on a duplicate id, a full queue, an empty prompt or a prompt
  // longer than max_model_len.
  absl::Status add_request(std::unique_ptr<Request> request);

  SchedulerOutput schedule();

  // Applies the tokens sampled for `output` (request id -> tokens; requests that did not
  // need logits are ignored), checks stop conditions and frees finished requests.
  std::vector<RequestOutput> update_from_output(
      const SchedulerOutput& output,
      const absl::flat_hash_map<std::string, std::vector<int32_t>>& sampled);

  // Finishes a request now (abort, or a stop string found by the detokenizer), freeing its
  // blocks. Returns false if the id is unknown or already finished.
  bool finish_request(const std::string& request_id, RequestStatus status,
                      StopReason stop_reason = {});
  bool abort(const std::string& request_id) {
    return finish_request(request_id, RequestStatus::kFinishedAborted);
  }

  // The live request, or null (finished requests are dropped).
  Request* get_request(const std::string& request_id);
  int32_t num_running() const { return static_cast<int32_t>(running_.size()); }
  int32_t num_waiting() const { return static_cast<int32_t>(waiting_.size()); }
  bool has_unfinished_requests() const { return !requests_.empty(); }
  SchedulerStats stats();
  KVCacheManager& kv_cache_manager() { return *kv_; }
  const SchedulerConfig& config() const { return config_; }

 private:
  struct StepEntry {
    Request* request;
    int32_t num_tokens;
    bool is_new;
  };
  struct StepPlan {
    int32_t token_budget = 0;
    std::vector<StepEntry> entries;
    std::vector<Request*> preempted;
  };

  void schedule_running(StepPlan& plan);
  void schedule_waiting(StepPlan& plan);
  // Frees the last running request's blocks and puts it at the front of the queue.
  Request* preempt_last_running();
  SchedulerOutput build_output(const StepPlan& plan);
  // Stop conditions after appending a token; sets status/stop_reason when finished.
  bool check_stop(Request& request) const;
  void free_finished(Request* request);

  SchedulerConfig config_;
  std::unique_ptr<KVCacheManager> kv_;
  absl::flat_hash_map<std::string, std::unique_ptr<Request>> requests_;
  std::deque<Request*> waiting_;
  std::vector<Request*> running_;
  std::vector<std::string> finished_since_last_step_;
  int64_t num_preemptions_ = 0;
};

}  // namespace moeserve::engine
