#include "moe/all2all_ht_prepare_finalize.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "core/parallel.h"

namespace moeserve {

StatusOr<std::unique_ptr<All2AllHtPrepareFinalize>> All2AllHtPrepareFinalize::create(
    ProcessGroup* group, int64_t num_experts) {
  MS_ASSIGN_OR_RETURN(auto placement,
                      ContiguousPlacement::create(num_experts, group->world_size()));
  return std::unique_ptr<All2AllHtPrepareFinalize>(
      new All2AllHtPrepareFinalize(group, std::move(placement)));
}

All2AllHtPrepareFinalize::All2AllHtPrepareFinalize(ProcessGroup* group,
                                                   ContiguousPlacement placement)
    : group_(group),
      placement_(std::move(placement)),
      num_local_(placement_.num_local_experts(group->rank())),
      combine_ops_(group) {}

Status All2AllHtPrepareFinalize::prepare(const RoutedTokens& in, ExpertBatch* batch) {
  const int n = group_->world_size(), self = group_->rank();
  const int64_t T = in.num_tokens, H = in.hidden, K = in.top_k, E = placement_.num_experts();
  hidden_ = H;
  top_k_ = K;
  num_tokens_ = T;
  const size_t record = static_cast<size_t>(H + 2 * K) * 4;
  // Destinations of each token, in rank order.
  sent_tokens_.resize(n);
  for (auto& s : sent_tokens_) s.clear();
  seen_.assign(n, -1);
  dest_begin_.resize(T + 1);
  dests_.clear();
  for (int64_t t = 0; t < T; ++t) {
    const size_t first = dests_.size();
    dest_begin_[t] = static_cast<int64_t>(first);
    for (int64_t k = 0; k < K; ++k) {
      const int32_t g = in.topk_ids[t * K + k];
      if (g < 0 || g >= E) {
        return absl::InvalidArgumentError(
            absl::StrFormat("all2all_ht: routed expert id %d out of range", g));
      }
      const int o = placement_.owner(g);
      if (seen_[o] != t) {
        seen_[o] = t;
        dests_.emplace_back(o, 0);
      }
    }
    std::sort(dests_.begin() + first, dests_.end());  // K is small
    for (size_t i = first; i < dests_.size(); ++i) {
      auto& list = sent_tokens_[dests_[i].first];
      dests_[i].second = static_cast<int32_t>(list.size());
      list.push_back(static_cast<int32_t>(t));
    }
  }
  dest_begin_[T] = static_cast<int64_t>(dests_.size());
  send_counts_.resize(n);
  for (int r = 0; r < n; ++r) send_counts_[r] = static_cast<int64_t>(sent_tokens_[r].size());
  // Pack the peers' records rank by rank; own tokens stay in in.x.
  std::vector<size_t> ssz(n), rsz(n);
  for (int r = 0; r < n; ++r) ssz[r] = r == self ? 0 : send_counts_[r] * record;
  send_buf_.resize(std::accumulate(ssz.begin(), ssz.end(), size_t{0}));
  size_t send_off = 0;
  for (int r = 0; r < n; ++r) {
    if (r == self) continue;
    const int64_t first = placement_.first_expert(r);
    const auto& toks = sent_tokens_[r];
    uint8_t* base = send_buf_.data() + send_off;
    parallel_for(
        static_cast<int64_t>(toks.size()),
        [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) {
            const int64_t t = toks[i];
            uint8_t* rec = base + i * record;
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
    send_off += ssz[r];
  }
  // Counts first (own included, so recv_counts_[self] is this rank's own), then the records.
  recv_counts_.assign(n, 0);
  std::vector<size_t> eight(n, sizeof(int64_t));
  MS_RETURN_IF_ERROR(group_->all_to_allv(send_counts_.data(), eight, recv_counts_.data(), eight));
  int64_t R = 0;
  for (int r = 0; r < n; ++r) {
    if (recv_counts_[r] < 0) return absl::DataLossError("all2all_ht: negative record count");
    rsz[r] = r == self ? 0 : recv_counts_[r] * record;
    if (r == self) self_begin_ = R;
    R += recv_counts_[r];
    if (r == self) self_end_ = R;
  }
  peer_records_ = R - (self_end_ - self_begin_);
  recv_buf_.resize(peer_records_ * record);
  MS_RETURN_IF_ERROR(group_->all_to_allv(send_buf_.data(), ssz, recv_buf_.data(), rsz));

  // Local permutation over the received records in rank order (own tokens at this rank's
  // place): rows of each local expert in (record, k) order.
  rx_.resize(R);
  rslot_.resize(R * K);
  rweights_.resize(R * K);
  const int64_t own_first = placement_.first_expert(self);
  int64_t j = 0;
  const uint8_t* rec = recv_buf_.data();
  for (int s = 0; s < n; ++s) {
    for (int64_t i = 0; i < recv_counts_[s]; ++i, ++j) {
      int64_t* slots = rslot_.data() + j * K;
      float* ws = rweights_.data() + j * K;
      if (s == self) {
        const int64_t t = sent_tokens_[self][i];
        rx_[j] = in.x + t * H;
        for (int64_t k = 0; k < K; ++k) {
          const int32_t g = in.topk_ids[t * K + k];
          const bool here = placement_.owner(g) == self;
          slots[k] = here ? g - own_first : -1;
          ws[k] = here ? in.topk_weights[t * K + k] : 0.0f;
        }
      } else {
        rx_[j] = reinterpret_cast<const float*>(rec);
        const auto* ids = reinterpret_cast<const int32_t*>(rec + H * 4);
        const auto* rw = reinterpret_cast<const float*>(rec + (H + K) * 4);
        for (int64_t k = 0; k < K; ++k) {
          if (ids[k] >= num_local_) {
            return absl::DataLossError(absl::StrFormat(
                "all2all_ht: received local expert id %d, this rank holds %d", ids[k], num_local_));
          }
          slots[k] = ids[k] < 0 ? -1 : ids[k];
          ws[k] = rw[k];
        }
        rec += record;
      }
    }
  }
  permute_to_experts(ActivationFormat::kStandard, num_local_, H, K, rslot_,
                     [&](int64_t r) { return rx_[r]; }, batch);
  return absl::OkStatus();
}

void All2AllHtPrepareFinalize::record_partial(int64_t j, const float* expert_out, float* p) const {
  const int64_t H = hidden_, K = top_k_;
  bool any = false;
  for (int64_t k = 0; k < K; ++k) {
    const int64_t s = rslot_[j * K + k];
    if (s < 0) continue;
    const float w = rweights_[j * K + k];
    const float* o = expert_out + s * H;
    if (!any) {
#pragma omp simd
      for (int64_t h = 0; h < H; ++h) p[h] = 0.0f + w * o[h];
    } else {
#pragma omp simd
      for (int64_t h = 0; h < H; ++h) p[h] += w * o[h];
    }
    any = true;
  }
  if (!any) std::fill(p, p + H, 0.0f);
}

Status All2AllHtPrepareFinalize::finalize_begin(const ExpertBatch& /*batch*/,
                                                const float* expert_out) {
  const int n = group_->world_size(), self = group_->rank();
  const int64_t H = hidden_;
  expert_out_ = expert_out;
  // One weighted, reduced partial per record received from a peer (records before this
  // rank's own keep their index, those after move down past them).
  const int64_t own = self_end_ - self_begin_;
  partial_.resize(peer_records_ * H);
  parallel_for(
      peer_records_,
      [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          const int64_t j = i < self_begin_ ? i : i + own;
          record_partial(j, expert_out, partial_.data() + i * H);
        }
      },
      4);
  // Peers' partials go back; this rank's own tokens are summed in finalize_end.
  std::vector<size_t> ssz(n), rsz(n);
  returned_off_.resize(n);
  int64_t S = 0;
  for (int r = 0; r < n; ++r) {
    ssz[r] = r == self ? 0 : recv_counts_[r] * H * sizeof(float);
    rsz[r] = r == self ? 0 : send_counts_[r] * H * sizeof(float);
    returned_off_[r] = S;
    if (r != self) S += send_counts_[r];
  }
  returned_.resize(S * H);
  group_->post_all_to_allv(&combine_ops_, group_->next_collective_tag(), partial_.data(), ssz,
                           returned_.data(), rsz);
  return absl::OkStatus();
}

Status All2AllHtPrepareFinalize::finalize_end(float* y) {
  MS_RETURN_IF_ERROR(group_->wait(&combine_ops_, "all2all_ht combine"));
  const int self = group_->rank();
  const int64_t H = hidden_;
  // Per token: 0 + the partials of its destinations in rank order (deterministic sums); this
  // rank's own partial is computed here, in a per-thread row.
  parallel_for(
      num_tokens_,
      [&](int64_t b, int64_t e) {
        std::vector<float> own(H);
        for (int64_t t = b; t < e; ++t) {
          float* yt = y + t * H;
          const int64_t d0 = dest_begin_[t], d1 = dest_begin_[t + 1];
          if (d0 == d1) {
            std::fill(yt, yt + H, 0.0f);
            continue;
          }
          for (int64_t d = d0; d < d1; ++d) {
            const auto [r, i] = dests_[d];
            const float* p;
            if (r == self) {
              record_partial(self_begin_ + i, expert_out_, own.data());
              p = own.data();
            } else {
              p = returned_.data() + (returned_off_[r] + i) * H;
            }
            if (d == d0) {
#pragma omp simd
              for (int64_t h = 0; h < H; ++h) yt[h] = 0.0f + p[h];
            } else {
#pragma omp simd
              for (int64_t h = 0; h < H; ++h) yt[h] += p[h];
            }
          }
        }
      },
      8);
  expert_out_ = nullptr;
  return absl::OkStatus();
}

Status All2AllHtPrepareFinalize::finalize(const ExpertBatch& batch, const float* expert_out,
                                          float* y) {
  MS_RETURN_IF_ERROR(finalize_begin(batch, expert_out));
  return finalize_end(y);
}

}  // namespace moeserve
