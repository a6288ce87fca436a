#include "engine/expert_load_stats.h"

namespace moeserve::engine {

ExpertLoadStats::ExpertLoadStats(DeepseekModel* model, ProcessGroup* group, int window_size)
    : model_(model),
      group_(group),
      layer_ids_(model->moe_layer_ids()),
      window_(static_cast<int>(layer_ids_.size()), model->config().n_routed_experts, window_size) {
  model_->set_expert_load_counters(&window_);
  summed_.assign(window_.window_sum().begin(), window_.window_sum().end());
  snapshot_ = std::make_shared<const ExpertLoadSnapshot>(
      make_expert_load_snapshot(summed_, layer_ids_, window_.num_experts(),
                                group_ ? group_->world_size() : 1, window_.window_size(), 0));
}

ExpertLoadStats::~ExpertLoadStats() {
  model_->set_expert_load_counters(nullptr);
}

void ExpertLoadStats::end_step(bool is_dummy) {
  window_.end_step(is_dummy);
  ++steps_since_publish_;
}

Status ExpertLoadStats::publish() {
  if (steps_since_publish_ == 0) return absl::OkStatus();
  steps_since_publish_ = 0;
  summed_.assign(window_.window_sum().begin(), window_.window_sum().end());
  if (group_ != nullptr && group_->world_size() > 1 && !summed_.empty()) {
    MS_RETURN_IF_ERROR(group_->all_reduce(std::span<int64_t>(summed_), ReduceOp::kSum));
  }
  auto snap = std::make_shared<const ExpertLoadSnapshot>(make_expert_load_snapshot(
      summed_, layer_ids_, window_.num_experts(), group_ ? group_->world_size() : 1,
      window_.window_size(), window_.steps_in_window()));
  absl::MutexLock lock(&mu_);
  snapshot_ = std::move(snap);
  return absl::OkStatus();
}

std::shared_ptr<const ExpertLoadSnapshot> ExpertLoadStats::snapshot() const {
  absl::MutexLock lock(&mu_);
  return snapshot_;
}

}  // namespace moeserve::engine
