// Lockstep between data-parallel engine ranks whose model has expert-parallel MoE layers
// (every forward is collective, so every rank steps together; vLLM's DP engine-core busy
// loop with coordinate_batch_across_dp and dummy batches).
//
// Each engine-loop iteration every rank calls sync() with what it brings: whether it has
// unfinished requests, how many tokens it scheduled, and whether it is stopping. sync() is
// one all-gather over the group, so every rank sees every rank's numbers and takes the same
// decision: step (ranks with no scheduled tokens run a dummy forward), stop, or go idle.
//
// Idle: when no rank has work, every rank calls wait_idle(), which sleeps on the engine's
// own condition (new request, abort, shutdown) with a short timeout, and between sleeps
// drives UCX progress once and looks for a wake message from a peer. A rank that gets local
// input sends a wake message (tagged kWakeTag, carrying the idle epoch) to every peer and
// returns; a rank that finds a peer's wake message returns. Every rank then meets in the
// next sync(). Nobody spins (the poll interval backs off to max_poll), and nobody can be
// left behind: each idle rank either has local input or receives the wake of one that has.
// Wake messages from an earlier idle epoch (two ranks woke each other at once) are
// discarded. A failed peer (UCX keepalive) is noticed while idle as well as in sync().
//
// Threading: the engine-loop thread only (it drives the ProcessGroup, also for the model's
// MoE layers). The group must outlive the coordinator.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

#include "comm/process_group.h"
#include "core/status.h"

namespace moeserve::engine {

// What one rank brings to a step.
struct DpRankState {
  bool has_work = false;   // unfinished requests (running or waiting)
  int64_t num_tokens = 0;  // tokens scheduled for this step (0: a dummy forward)
  bool stop_now = false;   // shutting down without draining
  bool draining = false;   // shutting down once its requests are done
  bool failed = false;     // hit a local error and is leaving
};

// Every rank's state for one step; identical on every rank.
struct DpStep {
  std::vector<DpRankState> ranks;  // [world]
  bool any_work() const;
  int64_t max_tokens() const;
  int64_t total_tokens() const;
  // First rank with stop_now / failed, or, when no rank has work, with draining; -1: none.
  int leaving_rank() const;
};

struct DpCoordinatorOptions {
  std::chrono::microseconds min_poll{500};   // first idle poll interval
  std::chrono::microseconds max_poll{5000};  // idle poll interval after backing off
};

class DpCoordinator {
 public:
  // User tag of the wake message (payload: the idle epoch, uint64).
  static constexpr uint64_t kWakeTag = ProcessGroup::kMaxUserTag - 1;

  explicit DpCoordinator(ProcessGroup* group, DpCoordinatorOptions options = {})
      : group_(group), options_(options) {}

  int rank() const { return group_->rank(); }
  int world_size() const { return group_->world_size(); }

  // Collective: shares `mine` with every rank. Fails (UnavailableError naming the rank) when
  // a peer has failed, or after the group's timeout.
  StatusOr<DpStep> sync(const DpRankState& mine);

  enum class Wake { kLocal, kPeer };
  // Call on every rank after a sync() in which no rank had work. `wait_local(timeout)` blocks
  // up to `timeout` for local input and returns whether there is some. Returns kLocal (after
  // waking the peers) or kPeer; an error when a peer failed.
  StatusOr<Wake> wait_idle(const std::function<bool(std::chrono::microseconds)>& wait_local);

  // Receives and drops wake messages that have arrived (call after a sync() in which the
  // ranks agreed to stop, so the group is torn down with no unmatched messages: a peer's
  // wake was sent before its part of that sync, and messages from one peer arrive in order).
  Status discard_wakes();

  int64_t idle_waits() const { return epoch_; }

 private:
  ProcessGroup* group_;
  DpCoordinatorOptions options_;
  uint64_t epoch_ = 0;  // idle periods so far; identical on every rank
};

}  // namespace moeserve::engine
