// Expert load statistics for EPLB: tokens routed to each logical expert of each MoE layer.
//
// Counting (the hot path) is a plain increment per routed token into the current step's
// counters (MoeLayer::forward, no locks, no atomics: the engine loop is the only thread that
// runs forwards). At the end of each engine step the step's counters enter a sliding window of
// the last `window_size` real steps; a dummy step (a data-parallel rank with no tokens that
// joins the collective) is not recorded and does not advance the window (vLLM's EplbState.step
// does the same). Memory: window_size · L · E int32 counters plus L · E int64 sums.
//
// Thread-safety: ExpertLoadWindow is used by the engine-loop thread only. ExpertLoadSnapshot
// is immutable plain data that the engine publishes for other threads (/metrics, /eplb/load).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace moeserve {

class ExpertLoadWindow {
 public:
  // `num_layers` MoE layers of `num_experts` logical experts; `window_size` >= 1 steps.
  ExpertLoadWindow(int num_layers, int64_t num_experts, int window_size);

  int num_layers() const { return num_layers_; }
  int64_t num_experts() const { return num_experts_; }
  int window_size() const { return window_size_; }

  // The current step's counters of MoE layer `layer` ([E]); the layer adds one per token and
  // chosen expert. Stable for the window's lifetime.
  int64_t* step_counters(int layer) { return pass_.data() + layer * num_experts_; }

  // Closes the step. A real step's counts replace the oldest step of a full window; a dummy
  // step's counts are dropped and the window is left as it was.
  void end_step(bool is_dummy);

  // Tokens per expert over the window: [L · E], layer-major.
  std::span<const int64_t> window_sum() const { return sum_; }
  // Real steps currently in the window (<= window_size).
  int64_t steps_in_window() const { return filled_; }
  // Real steps recorded since construction.
  int64_t steps_recorded() const { return recorded_; }

 private:
  int num_layers_;
  int64_t num_experts_;
  int window_size_;
  std::vector<int64_t> pass_;  // [L · E] current step
  std::vector<int32_t> ring_;  // [window_size · L · E] last steps, oldest at next_
  std::vector<int64_t> sum_;   // [L · E] sum of ring_
  int next_ = 0;
  int64_t filled_ = 0;
  int64_t recorded_ = 0;
};

// What /metrics and /eplb/load report: the window's tokens per logical expert summed over the
// expert-parallel group, and per layer the balancedness of the ranks that hold the experts.
struct ExpertLoadSnapshot {
  std::vector<int> layer_ids;  // [L] model layer index of each MoE layer
  int64_t num_experts = 0;
  int num_ranks = 1;  // expert-parallel ranks the experts are spread over
  int window_size = 0;
  int64_t steps_in_window = 0;                    // this rank's real steps in its window
  std::vector<std::vector<int64_t>> tokens;       // [L][E] summed over the group
  std::vector<std::vector<int64_t>> rank_tokens;  // [L][M] tokens received by each rank
  std::vector<double> balancedness;               // [L] mean / max of rank_tokens (1: none)
};

// vLLM's balancedness: mean tokens per rank / max tokens per rank (1.0 when no tokens).
double balancedness(std::span<const int64_t> rank_tokens);

// Builds a snapshot from summed `tokens` ([L · E]) with contiguous placement over `num_ranks`
// (rank r holds experts [r·E/M, (r+1)·E/M)).
ExpertLoadSnapshot make_expert_load_snapshot(std::span<const int64_t> tokens,
                                             std::vector<int> layer_ids, int64_t num_experts,
                                             int num_ranks, int window_size,
                                             int64_t steps_in_window);

}  // namespace moeserve
