// The engine's side of EPLB's load statistics: owns the model's ExpertLoadWindow (the MoE
// layers count into it during forwards), closes it after every step, and publishes what
// /metrics and /eplb/load show — the window's tokens per logical expert summed over the
// expert-parallel group, with per-layer balancedness.
//
// Publishing sums over the group with one all-reduce of L · E int64, so with a group it is
// collective: every rank calls publish() at the same point of the data-parallel lockstep
// (the engine does it every kPublishInterval lockstep steps, and when the group goes idle).
// publish_due() depends only on the count of lockstep steps, which all ranks share.
//
// Thread-safety: everything but snapshot() on the engine-loop thread only; snapshot() from
// any thread.
#pragma once

#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "comm/process_group.h"
#include "core/status.h"
#include "model/deepseek.h"
#include "moe/expert_load.h"

namespace moeserve::engine {

class ExpertLoadStats {
 public:
  // Steps (real or dummy) between two publications while there is work.
  static constexpr int64_t kPublishInterval = 16;

  // Points `model`'s MoE layers at a window of `window_size` steps. `group` (may be null: one
  // rank) is the model's expert-parallel group. `model` and `group` must outlive this.
  ExpertLoadStats(DeepseekModel* model, ProcessGroup* group, int window_size);
  ~ExpertLoadStats();
  ExpertLoadStats(const ExpertLoadStats&) = delete;
  ExpertLoadStats& operator=(const ExpertLoadStats&) = delete;

  // After every step's forward; `is_dummy`: a data-parallel dummy step (no tokens of ours).
  void end_step(bool is_dummy);
  bool publish_due() const { return steps_since_publish_ >= kPublishInterval; }
  // Sums over the group (collective, see above) and publishes; a no-op when no step ended
  // since the last publication.
  Status publish();

  std::shared_ptr<const ExpertLoadSnapshot> snapshot() const;

 private:
  DeepseekModel* model_;
  ProcessGroup* group_;
  std::vector<int> layer_ids_;
  ExpertLoadWindow window_;
  int64_t steps_since_publish_ = 0;
  std::vector<int64_t> summed_;  // scratch for the all-reduce

  mutable absl::Mutex mu_;
  std::shared_ptr<const ExpertLoadSnapshot> snapshot_ ABSL_GUARDED_BY(mu_);
};

}  // namespace moeserve::engine
