#include "moe/all2all_ll_prepare_finalize.h"

#include <algorithm>
#include <cstring>

#include "core/parallel.h"

namespace moeserve {
namespace {
size_t align64(size_t x) {
  return (x + 63) / 64 * 64;
}
}  // namespace

StatusOr<std::unique_ptr<All2AllLlPrepareFinalize>> All2AllLlPrepareFinalize::create(
    ProcessGroup* group, const LowLatencyConfig& c) {
  const int n = group->world_size();
  if (c.num_experts % n != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "all2all_ll: %d experts are not divisible by the expert-parallel size %d (its static "
        "per-expert slots need the same number of experts on every rank)",
        c.num_experts, n));
  }
  if (c.hidden <= 0 || c.top_k <= 0 || c.max_tokens_per_rank <= 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "all2all_ll: hidden (%d), top-k (%d) and max tokens per rank (%d) must be positive",
        c.hidden, c.top_k, c.max_tokens_per_rank));
  }
  MS_ASSIGN_OR_RETURN(auto placement, ContiguousPlacement::create(c.num_experts, n));
  std::unique_ptr<All2AllLlPrepareFinalize> pf(
      new All2AllLlPrepareFinalize(group, c, std::move(placement)));
  MS_ASSIGN_OR_RETURN(pf->dispatch_, RegisteredBuffer::create(group, pf->dispatch_flag_off(n)));
  MS_ASSIGN_OR_RETURN(pf->combine_, RegisteredBuffer::create(group, pf->combine_flag_off(n)));
  return pf;
}

All2AllLlPrepareFinalize::All2AllLlPrepareFinalize(ProcessGroup* group, const LowLatencyConfig& c,
                                                   ContiguousPlacement placement)
    : group_(group),
      cfg_(c),
      placement_(std::move(placement)),
      world_(group->world_size()),
      rank_(group->rank()),
      num_local_(c.num_experts / group->world_size()),
      slots_(c.max_tokens_per_rank * group->world_size()) {}

size_t All2AllLlPrepareFinalize::rows_off(int sender) const {
  return static_cast<size_t>(sender * rows_per_sender() * cfg_.hidden) * sizeof(float);
}
size_t All2AllLlPrepareFinalize::meta_off(int sender) const {
  return rows_off(world_) + static_cast<size_t>(sender * (num_local_ + 1)) * sizeof(int32_t);
}
size_t All2AllLlPrepareFinalize::dispatch_flag_off(int sender) const {
  return align64(meta_off(world_)) + static_cast<size_t>(sender) * 8;
}
size_t All2AllLlPrepareFinalize::combine_flag_off(int sender) const {
  return align64(static_cast<size_t>(rows_per_sender() * cfg_.hidden) * sizeof(float)) +
         static_cast<size_t>(sender) * 8;
}

Status All2AllLlPrepareFinalize::wait_all_flags(RegisteredBuffer* buf,
                                                size_t (All2AllLlPrepareFinalize::*off)(int) const,
                                                const char* what) {
  std::vector<size_t> offs(world_);
  std::vector<int> peers(world_);
  for (int s = 0; s < world_; ++s) {
    offs[s] = (this->*off)(s);
    peers[s] = s;
  }
  return buf->wait_flags(offs, peers, seq_, what);
}

StatusOr<int64_t> All2AllLlPrepareFinalize::num_chunks(int64_t num_tokens,
                                                       int64_t max_tokens_across_ranks) {
  int64_t max_tokens = max_tokens_across_ranks;
  if (max_tokens < num_tokens) {
    max_tokens = num_tokens;
    MS_RETURN_IF_ERROR(group_->all_reduce(std::span<int64_t>(&max_tokens, 1), ReduceOp::kMax));
  }
  const int64_t m = cfg_.max_tokens_per_rank;
  return std::max<int64_t>(1, (max_tokens + m - 1) / m);
}

Status All2AllLlPrepareFinalize::prepare(const RoutedTokens& in, ExpertBatch* batch) {
  const int64_t T = in.num_tokens, H = cfg_.hidden, K = cfg_.top_k, M = cfg_.max_tokens_per_rank;
  const int64_t E = cfg_.num_experts, L = num_local_, R = rows_per_sender();
  if (in.hidden != H || in.top_k != K) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "all2all_ll: built for hidden %d top-k %d, called with %d, %d", H, K, in.hidden, in.top_k));
  }
  if (T > M) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "all2all_ll: %d tokens exceed max_tokens_per_rank %d (run in chunks)", T, M));
  }
  ++seq_;
  num_tokens_ = T;
  weights_.assign(in.topk_weights, in.topk_weights + T * K);
  // Rows per (destination rank, local expert), then their packed positions.
  std::vector<int32_t> counts(world_ * L, 0);
  std::vector<int32_t> dest(T * K);  // (rank * L + local expert) per (token, k)
  for (int64_t i = 0; i < T * K; ++i) {
    const int32_t g = in.topk_ids[i];
    if (g < 0 || g >= E) {
      return absl::InvalidArgumentError(
          absl::StrFormat("all2all_ll: routed expert id %d out of range", g));
    }
    const int o = placement_.owner(g);
    dest[i] = static_cast<int32_t>(o * L + (g - placement_.first_expert(o)));
    if (++counts[dest[i]] > M) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "all2all_ll: expert %d routed more than %d times in one chunk (duplicate top-k ids?)", g,
          M));
    }
  }
  std::vector<int64_t> begin(world_ * L + 1, 0);
  for (int64_t d = 0; d < world_ * L; ++d) begin[d + 1] = begin[d] + counts[d];
  std::vector<int64_t> cursor(begin.begin(), begin.end() - 1);
  send_rows_.resize(T * K * H);
  send_pos_.resize(T * K);
  for (int64_t i = 0; i < T * K; ++i) {
    const int64_t pos = cursor[dest[i]]++;
    send_pos_[i] = static_cast<int32_t>(pos);
    std::memcpy(send_rows_.data() + pos * H, in.x + (i / K) * H, H * sizeof(float));
  }
  send_meta_.resize(world_ * (L + 1));
  for (int o = 0; o < world_; ++o) {
    std::copy(counts.begin() + o * L, counts.begin() + (o + 1) * L,
              send_meta_.begin() + o * (L + 1));
    send_meta_[o * (L + 1) + L] = static_cast<int32_t>(begin[o * L]);
  }
  // Per peer (in rotated order to spread the load): its rows in one put, the meta, the flag.
  for (int step = 1; step <= world_; ++step) {
    const int o = (rank_ + step) % world_;
    const int64_t n = begin[(o + 1) * L] - begin[o * L];
    MS_RETURN_IF_ERROR(dispatch_->put(o, send_rows_.data() + begin[o * L] * H,
                                      n * H * sizeof(float), rows_off(rank_)));
    MS_RETURN_IF_ERROR(dispatch_->put(o, send_meta_.data() + o * (L + 1),
                                      (L + 1) * sizeof(int32_t), meta_off(rank_)));
    MS_RETURN_IF_ERROR(dispatch_->put_flag(o, dispatch_flag_off(rank_), seq_));
  }
  MS_RETURN_IF_ERROR(wait_all_flags(dispatch_.get(), &All2AllLlPrepareFinalize::dispatch_flag_off,
                                    "all2all_ll dispatch"));
  // Validate what the peers wrote, then copy each expert's rows (sender by sender) into its
  // slab of the batched format.
  recv_offsets_.resize(world_ * (L + 1));
  recv_start_.resize(world_);
  for (int s = 0; s < world_; ++s) {
    const auto* meta = reinterpret_cast<const int32_t*>(dispatch_->data() + meta_off(s));
    int64_t total = 0;
    for (int64_t e = 0; e < L; ++e) {
      if (meta[e] < 0 || meta[e] > M) {
        return absl::DataLossError(
            absl::StrFormat("all2all_ll: rank %d sent a count of %d rows", s, meta[e]));
      }
      recv_offsets_[s * (L + 1) + e] = total;
      total += meta[e];
    }
    recv_offsets_[s * (L + 1) + L] = total;
    if (meta[L] < 0 || total > R || meta[L] + total > R) {
      return absl::DataLossError(absl::StrFormat(
          "all2all_ll: rank %d sent %d rows starting at %d (at most %d)", s, total, meta[L], R));
    }
    recv_start_[s] = meta[L];
  }
  batch->format = ActivationFormat::kBatched;
  batch->hidden = H;
  batch->num_local_experts = L;
  batch->max_tokens_per_expert = slots_;
  batch->expert_offsets.clear();
  batch->expert_num_tokens.assign(L, 0);
  batch->a1.resize(L * slots_ * H);
  const auto* rows = reinterpret_cast<const float*>(dispatch_->data());
  parallel_for(L, [&](int64_t b, int64_t end) {
    for (int64_t e = b; e < end; ++e) {
      int64_t j = 0;
      for (int s = 0; s < world_; ++s) {
        // Sender s's rows for expert e follow its rows for earlier experts.
        const int64_t* off = recv_offsets_.data() + s * (L + 1);
        const int64_t src = s * R + off[e], c = off[e + 1] - off[e];
        if (c > 0) {
          std::memcpy(batch->a1.data() + (e * slots_ + j) * H, rows + src * H,
                      c * H * sizeof(float));
        }
        j += c;
      }
      batch->expert_num_tokens[e] = static_cast<int32_t>(j);
    }
  });
  return absl::OkStatus();
}

Status All2AllLlPrepareFinalize::finalize_begin(const ExpertBatch& batch, const float* expert_out) {
  const int64_t H = cfg_.hidden, L = num_local_;
  // Each sender's outputs back in its order (by local expert, its rows in the order it sent
  // them), one contiguous block per sender.
  std::vector<int64_t> stage_begin(world_ + 1, 0);
  for (int s = 0; s < world_; ++s) {
    stage_begin[s + 1] = stage_begin[s] + recv_offsets_[s * (L + 1) + L];
  }
  stage_.resize(stage_begin[world_] * H);
  parallel_for(L, [&](int64_t b, int64_t end) {
    for (int64_t e = b; e < end; ++e) {
      int64_t j = 0;  // row of expert e's slab
      for (int s = 0; s < world_; ++s) {
        const int64_t* off = recv_offsets_.data() + s * (L + 1);
        const int64_t dst = stage_begin[s] + off[e], c = off[e + 1] - off[e];
        if (c > 0) {  // stage_ may be empty (no data pointer) when nothing was received
          std::memcpy(stage_.data() + dst * H, expert_out + (e * slots_ + j) * H,
                      c * H * sizeof(float));
        }
        j += c;
      }
    }
  });
  for (int step = 1; step <= world_; ++step) {
    const int s = (rank_ + step) % world_;
    const int64_t n = stage_begin[s + 1] - stage_begin[s];
    MS_RETURN_IF_ERROR(combine_->put(s, stage_.data() + stage_begin[s] * H, n * H * sizeof(float),
                                     static_cast<size_t>(recv_start_[s] * H) * sizeof(float)));
    MS_RETURN_IF_ERROR(combine_->put_flag(s, combine_flag_off(rank_), seq_));
  }
  pending_ = &batch;
  return absl::OkStatus();
}

Status All2AllLlPrepareFinalize::finalize_end(float* y) {
  if (pending_ == nullptr) return absl::InternalError("all2all_ll: finalize_end without begin");
  pending_ = nullptr;
  MS_RETURN_IF_ERROR(wait_all_flags(combine_.get(), &All2AllLlPrepareFinalize::combine_flag_off,
                                    "all2all_ll combine"));
  const int64_t H = cfg_.hidden, K = cfg_.top_k;
  const auto* rows = reinterpret_cast<const float*>(combine_->data());
  parallel_for(
      num_tokens_,
      [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
          float* yt = y + t * H;
          std::fill(yt, yt + H, 0.0f);
          for (int64_t k = 0; k < K; ++k) {
            const float w = weights_[t * K + k];
            const float* o = rows + static_cast<int64_t>(send_pos_[t * K + k]) * H;
            for (int64_t h = 0; h < H; ++h) yt[h] += w * o[h];
          }
        }
      },
      4);
  // Source buffers (send_rows_, send_meta_, stage_) are reused next round.
  MS_RETURN_IF_ERROR(dispatch_->wait_local());
  return combine_->wait_local();
}

Status All2AllLlPrepareFinalize::finalize(const ExpertBatch& batch, const float* expert_out,
                                          float* y) {
  MS_RETURN_IF_ERROR(finalize_begin(batch, expert_out));
  return finalize_end(y);
}

}  // namespace moeserve
