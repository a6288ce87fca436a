#include "moe/allgather_reducescatter_prepare_finalize.h"

#include <algorithm>

#include "core/parallel.h"

namespace moeserve {

StatusOr<std::unique_ptr<AllGatherReduceScatterPrepareFinalize>>
AllGatherReduceScatterPrepareFinalize::create(ProcessGroup* group, int64_t num_experts) {
  MS_ASSIGN_OR_RETURN(auto placement,
                      ContiguousPlacement::create(num_experts, group->world_size()));
  return std::unique_ptr<AllGatherReduceScatterPrepareFinalize>(
      new AllGatherReduceScatterPrepareFinalize(group, std::move(placement)));
}

AllGatherReduceScatterPrepareFinalize::AllGatherReduceScatterPrepareFinalize(
    ProcessGroup* group, ContiguousPlacement placement)
    : group_(group),
      placement_(std::move(placement)),
      local_(ActivationFormat::kStandard, placement_.expert_map(group->rank()),
             placement_.num_local_experts(group->rank())),
      combine_ops_(group) {}

Status AllGatherReduceScatterPrepareFinalize::prepare(const RoutedTokens& in, ExpertBatch* batch) {
  const int n = group_->world_size();
  const int64_t H = in.hidden, K = in.top_k;
  // Every rank's [T, H, K]; H and K must agree across the group.
  const int64_t mine[3] = {in.num_tokens, H, K};
  std::vector<int64_t> all(3 * n);
  MS_RETURN_IF_ERROR(group_->all_gather(mine, sizeof(mine), all.data()));
  counts_.assign(n, 0);
  int64_t total = 0;
  for (int r = 0; r < n; ++r) {
    if (all[3 * r + 1] != H || all[3 * r + 2] != K) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "allgather_reducescatter: rank %d has hidden %d top-k %d, rank %d has %d, %d", r,
          all[3 * r + 1], all[3 * r + 2], group_->rank(), H, K));
    }
    counts_[r] = all[3 * r];
    total += counts_[r];
  }
  hidden_ = H;
  gathered_x_.resize(static_cast<size_t>(total * H));
  gathered_ids_.resize(static_cast<size_t>(total * K));
  gathered_weights_.resize(static_cast<size_t>(total * K));
  std::vector<size_t> xs(n), ks(n);
  for (int r = 0; r < n; ++r) {
    xs[r] = static_cast<size_t>(counts_[r] * H) * sizeof(float);
    ks[r] = static_cast<size_t>(counts_[r] * K) * sizeof(int32_t);
  }
  MS_RETURN_IF_ERROR(group_->all_gatherv(in.x, xs, gathered_x_.data()));
  MS_RETURN_IF_ERROR(group_->all_gatherv(in.topk_ids, ks, gathered_ids_.data()));
  MS_RETURN_IF_ERROR(group_->all_gatherv(in.topk_weights, ks, gathered_weights_.data()));
  RoutedTokens gathered{gathered_x_.data(),       total, H, gathered_ids_.data(),
                        gathered_weights_.data(), K};
  return local_.prepare(gathered, batch);
}

Status AllGatherReduceScatterPrepareFinalize::finalize_begin(const ExpertBatch& batch,
                                                             const float* expert_out) {
  const int n = group_->world_size(), me = group_->rank();
  const int64_t H = hidden_;
  int64_t total = 0;
  for (int64_t c : counts_) total += c;
  partial_.resize(static_cast<size_t>(total * H));
  MS_RETURN_IF_ERROR(local_.finalize(batch, expert_out, partial_.data()));
  // Reduce-scatter: rank r's rows of the partials go to rank r.
  std::vector<size_t> send(n), recv(n);
  for (int r = 0; r < n; ++r) {
    send[r] = static_cast<size_t>(counts_[r] * H) * sizeof(float);
    recv[r] = static_cast<size_t>(counts_[me] * H) * sizeof(float);
  }
  received_.resize(static_cast<size_t>(n * counts_[me] * H));
  group_->post_all_to_allv(&combine_ops_, group_->next_collective_tag(), partial_.data(), send,
                           received_.data(), recv);
  return absl::OkStatus();
}

Status AllGatherReduceScatterPrepareFinalize::finalize_end(float* y) {
  MS_RETURN_IF_ERROR(group_->wait(&combine_ops_, "allgather_reducescatter combine"));
  const int n = group_->world_size();
  const int64_t m = counts_[group_->rank()] * hidden_;
  parallel_for(
      m,
      [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          float acc = received_[i];
          for (int r = 1; r < n; ++r) acc += received_[r * m + i];
          y[i] = acc;
        }
      },
      4096);
  return absl::OkStatus();
}

Status AllGatherReduceScatterPrepareFinalize::finalize(const ExpertBatch& batch,
                                                       const float* expert_out, float* y) {
  MS_RETURN_IF_ERROR(finalize_begin(batch, expert_out));
  return finalize_end(y);
}

}  // namespace moeserve
