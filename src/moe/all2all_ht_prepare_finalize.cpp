#include "moe/all2all_ht_prepare_finalize.h"

#include <algorithm>
#include <cstring>

#include "core/parallel.h"

namespace moeserve {

StatusOr<std::unique_ptr<All2AllHtPrepareFinalize>> All2AllHtPrepareFinalize::create(
    ProcessGroup* group, int64_t num_experts) {
  MS_ASSIGN_OR_RETURN(auto placement,
                      ContiguousPlacement::create(num_experts, group->world_size()));
  return std::unique_ptr<All2AllHtPrepareFinalize>(
      new All2AllHtPrepareFinalize(group, std::move(placement)));
}

std::vector<int32_t> All2AllHtPrepareFinalize::padded_local_map(int64_t num_local) {
  std::vector<int32_t> map(num_local + 1, -1);
  for (int64_t e = 0; e < num_local; ++e) map[e] = static_cast<int32_t>(e);
  return map;
}

All2AllHtPrepareFinalize::All2AllHtPrepareFinalize(ProcessGroup* group,
                                                   ContiguousPlacement placement)
    : group_(group),
      placement_(std::move(placement)),
      num_local_(placement_.num_local_experts(group->rank())),
      local_(ActivationFormat::kStandard, padded_local_map(num_local_), num_local_),
      combine_ops_(group) {}

Status All2AllHtPrepareFinalize::prepare(const RoutedTokens& in, ExpertBatch* batch) {
  const int n = group_->world_size();
  const int64_t T = in.num_tokens, H = in.hidden, K = in.top_k, E = placement_.num_experts();
  hidden_ = H;
  top_k_ = K;
  num_tokens_ = T;
  const size_t record = static_cast<size_t>(H + 2 * K) * 4;
  // Destinations of each token, in rank order.
  send_counts_.assign(n, 0);
  sent_tokens_.assign(n, {});
  for (int64_t t = 0; t < T; ++t) {
    std::vector<int> dests;  // K is small: a linear search dedupes
    for (int64_t k = 0; k < K; ++k) {
      const int32_t g = in.topk_ids[t * K + k];
      if (g < 0 || g >= E) {
        return absl::InvalidArgumentError(
            absl::StrFormat("all2all_ht: routed expert id %d out of range", g));
      }
      const int o = placement_.owner(g);
      if (std::find(dests.begin(), dests.end(), o) == dests.end()) dests.push_back(o);
    }
    std::sort(dests.begin(), dests.end());
    for (int o : dests) sent_tokens_[o].push_back(static_cast<int32_t>(t));
  }
  for (int r = 0; r < n; ++r) send_counts_[r] = static_cast<int64_t>(sent_tokens_[r].size());
  // Pack records rank by rank.
  std::vector<size_t> send_off(n + 1, 0);
  for (int r = 0; r < n; ++r) send_off[r + 1] = send_off[r] + send_counts_[r] * record;
  send_buf_.resize(send_off[n]);
  for (int r = 0; r < n; ++r) {
    const int64_t first = placement_.first_expert(r);
    const auto& toks = sent_tokens_[r];
    parallel_for(
        static_cast<int64_t>(toks.size()),
        [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) {
            const int64_t t = toks[i];
            uint8_t* rec = send_buf_.data() + send_off[r] + i * record;
            std::memcpy(rec, in.x + t * H, H * 4);
            auto* ids = reinterpret_cast<int32_t*>(rec + H * 4);
            auto* ws = reinterpret_cast<float*>(rec + (H + K) * 4);
            for (int64_t k = 0; k < K; ++k) {
              const int32_t g = in.topk_ids[t * K + k];
              const bool here = placement_.owner(g) == r;
              ids[k] = here ? static_cast<int32_t>(g - first) : -1;
              ws[k] = here ? in.topk_weights[t * K + k] : 0.0f;
            }
          }
        },
        16);
  }
  // Counts first, then the records.
  recv_counts_.assign(n, 0);
  std::vector<size_t> eight(n, sizeof(int64_t));
  MS_RETURN_IF_ERROR(group_->all_to_allv(send_counts_.data(), eight, recv_counts_.data(), eight));
  std::vector<size_t> ssz(n), rsz(n);
  int64_t R = 0;
  for (int r = 0; r < n; ++r) {
    ssz[r] = send_counts_[r] * record;
    rsz[r] = recv_counts_[r] * record;
    R += recv_counts_[r];
  }
  recv_buf_.resize(R * record);
  MS_RETURN_IF_ERROR(group_->all_to_allv(send_buf_.data(), ssz, recv_buf_.data(), rsz));
  // Unpack into the local permutation's inputs; padding slots use the extra id num_local_.
  rx_.resize(R * H);
  rids_.resize(R * K);
  rweights_.resize(R * K);
  parallel_for(
      R,
      [&](int64_t b, int64_t e) {
        for (int64_t j = b; j < e; ++j) {
          const uint8_t* rec = recv_buf_.data() + j * record;
          std::memcpy(rx_.data() + j * H, rec, H * 4);
          const auto* ids = reinterpret_cast<const int32_t*>(rec + H * 4);
          const auto* ws = reinterpret_cast<const float*>(rec + (H + K) * 4);
          for (int64_t k = 0; k < K; ++k) {
            rids_[j * K + k] = ids[k] < 0 ? static_cast<int32_t>(num_local_) : ids[k];
            rweights_[j * K + k] = ws[k];
          }
        }
      },
      16);
  for (int64_t i = 0; i < R * K; ++i) {
    if (rids_[i] > num_local_) {
      return absl::DataLossError(absl::StrFormat(
          "all2all_ht: received local expert id %d, this rank holds %d", rids_[i], num_local_));
    }
  }
  RoutedTokens received{rx_.data(), R, H, rids_.data(), rweights_.data(), K};
  return local_.prepare(received, batch);
}

Status All2AllHtPrepareFinalize::finalize_begin(const ExpertBatch& batch, const float* expert_out) {
  const int n = group_->world_size();
  const int64_t H = hidden_;
  int64_t R = 0, S = 0;
  for (int r = 0; r < n; ++r) {
    R += recv_counts_[r];
    S += send_counts_[r];
  }
  // One weighted, reduced partial per received (token, rank) record.
  partial_.resize(R * H);
  MS_RETURN_IF_ERROR(local_.finalize(batch, expert_out, partial_.data()));
  std::vector<size_t> ssz(n), rsz(n);
  for (int r = 0; r < n; ++r) {
    ssz[r] = recv_counts_[r] * H * sizeof(float);
    rsz[r] = send_counts_[r] * H * sizeof(float);
  }
  returned_.resize(S * H);
  group_->post_all_to_allv(&combine_ops_, group_->next_collective_tag(), partial_.data(), ssz,
                           returned_.data(), rsz);
  return absl::OkStatus();
}

Status All2AllHtPrepareFinalize::finalize_end(float* y) {
  MS_RETURN_IF_ERROR(group_->wait(&combine_ops_, "all2all_ht combine"));
  const int64_t H = hidden_;
  std::fill(y, y + num_tokens_ * H, 0.0f);
  int64_t off = 0;
  for (int r = 0; r < group_->world_size(); ++r) {  // rank order: deterministic sums
    const auto& toks = sent_tokens_[r];
    parallel_for(
        static_cast<int64_t>(toks.size()),
        [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) {
            float* yt = y + static_cast<int64_t>(toks[i]) * H;
            const float* p = returned_.data() + (off + i) * H;
            for (int64_t h = 0; h < H; ++h) yt[h] += p[h];
          }
        },
        8);
    off += static_cast<int64_t>(toks.size());
  }
  return absl::OkStatus();
}

Status All2AllHtPrepareFinalize::finalize(const ExpertBatch& batch, const float* expert_out,
                                          float* y) {
  MS_RETURN_IF_ERROR(finalize_begin(batch, expert_out));
  return finalize_end(y);
}

}  // namespace moeserve
