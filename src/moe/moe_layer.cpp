#include "moe/moe_layer.h"

#include <algorithm>
#include <numeric>
#include <span>

#include "core/dtype.h"
#include "kernels/ops.h"
#include "moe/experts.h"
#include "moe/local_prepare_finalize.h"

namespace moeserve {

StatusOr<MoeLayer> MoeLayer::create(GateParams gate, Tensor gate_weight, Tensor bias,
                                    std::optional<GatedMlp> shared,
                                    std::shared_ptr<PrepareFinalize> prepare_finalize,
                                    std::unique_ptr<Experts> experts) {
  MS_RETURN_IF_ERROR(gate.validate());
  if (prepare_finalize->format() != experts->format()) {
    return absl::InvalidArgumentError(absl::StrCat("moe: prepare/finalize '",
                                                   prepare_finalize->name(), "' and experts '",
                                                   experts->name(), "' use different formats"));
  }
  if (gate_weight.rank() != 2 || gate_weight.dim(0) != gate.num_experts) {
    return absl::InvalidArgumentError(absl::StrCat("moe: gate weight has shape ",
                                                   gate_weight.shape_string(), ", expected [",
                                                   gate.num_experts, ", hidden]"));
  }
  MoeLayer m;
  m.gate_ = gate;
  MS_ASSIGN_OR_RETURN(m.gate_linear_, Linear::create(std::move(gate_weight)));
  if (bias.defined() && bias.numel() > 0) {
    if (bias.numel() != gate.num_experts) {
      return absl::InvalidArgumentError(absl::StrCat("moe: e_score_correction_bias has shape ",
                                                     bias.shape_string(), ", expected [",
                                                     gate.num_experts, "]"));
    }
    m.bias_.resize(gate.num_experts);
    for (int64_t e = 0; e < gate.num_experts; ++e) {
      switch (bias.dtype()) {
        case DType::kF32:
          m.bias_[e] = bias.data<float>()[e];
          break;
        case DType::kBF16:
          m.bias_[e] = bf16_to_f32(bias.data<uint16_t>()[e]);
          break;
        case DType::kF16:
          m.bias_[e] = f16_to_f32(bias.data<uint16_t>()[e]);
          break;
        default:
          return absl::InvalidArgumentError(
              absl::StrCat("moe: e_score_correction_bias has unsupported dtype ",
                           std::string(dtype_name(bias.dtype()))));
      }
    }
  } else if (gate.method == GateTopk::kNoauxTc) {
    return absl::InvalidArgumentError(
        "moe: topk_method noaux_tc needs mlp.gate.e_score_correction_bias");
  }
  m.shared_ = std::move(shared);
  m.pf_ = std::move(prepare_finalize);
  m.experts_ = std::move(experts);
  return m;
}

Status MoeLayer::set_low_latency_kernel(std::shared_ptr<PrepareFinalize> prepare_finalize,
                                        std::unique_ptr<Experts> experts, int64_t max_tokens) {
  if (prepare_finalize->format() != experts->format()) {
    return absl::InvalidArgumentError(absl::StrCat("moe: prepare/finalize '",
                                                   prepare_finalize->name(), "' and experts '",
                                                   experts->name(), "' use different formats"));
  }
  if (max_tokens < 0) {
    return absl::InvalidArgumentError("moe: the low-latency token threshold must be >= 0");
  }
  ll_pf_ = std::move(prepare_finalize);
  ll_experts_ = std::move(experts);
  ll_max_tokens_ = max_tokens;
  return absl::OkStatus();
}

Status MoeLayer::forward(const float* x, int64_t T, float* y, MoeRouting* routing,
                         int64_t max_tokens_across_ranks, const MoeRouting* replay,
                         Arena* scratch) {
  PrepareFinalize* pf = pf_.get();
  const Experts* experts = experts_.get();
  if (ll_pf_) {
    if (max_tokens_across_ranks < T) {
      return absl::InternalError(
          "moe: a layer with two kernels needs the token count agreed across ranks");
    }
    if (max_tokens_across_ranks <= ll_max_tokens_) {
      pf = ll_pf_.get();
      experts = ll_experts_.get();
    }
  }
  const int64_t E = gate_.num_experts, K = gate_.top_k, H = gate_linear_.in_features();
  Arena local;
  Arena& arena = scratch != nullptr ? *scratch : local;
  Arena::Scope scope(arena);
  std::span<int32_t> ids = arena.alloc<int32_t>(T * K);  // [T, K]
  std::span<float> weights = arena.alloc<float>(T * K);  // [T, K]
  if (replay) {
    if (static_cast<int64_t>(replay->topk_ids.size()) != T * K ||
        replay->topk_weights.size() != replay->topk_ids.size()) {
      return absl::InvalidArgumentError(absl::StrCat("moe: replayed routing has ",
                                                     replay->topk_ids.size(), " choices for ", T,
                                                     " tokens of top-", K));
    }
    for (int32_t id : replay->topk_ids) {
      if (id < 0 || id >= E) {
        return absl::InvalidArgumentError(
            absl::StrCat("moe: replayed expert id ", id, " is not in [0, ", E, ")"));
      }
    }
    std::copy(replay->topk_ids.begin(), replay->topk_ids.end(), ids.begin());
    std::copy(replay->topk_weights.begin(), replay->topk_weights.end(), weights.begin());
  } else {
    std::span<float> logits = arena.alloc<float>(T * E);  // [T, E]
    gate_linear_.forward(x, T, logits.data());
    select_experts(gate_, logits.data(), bias_.empty() ? nullptr : bias_.data(), T, ids.data(),
                   weights.data());
  }
  last_pf_name_ = pf->name();
  if (load_counters_ != nullptr) {
    for (int32_t id : ids) ++load_counters_[id];
  }

  RoutedTokens in{x, T, H, ids.data(), weights.data(), K};
  // The shared experts run while the combine is in flight.
  std::span<float> shared_out;  // [T, H]
  if (shared_) shared_out = arena.alloc<float>(T * H);
  std::function<void()> overlap;
  if (shared_) {
    overlap = [&] { shared_->forward(x, T, shared_out.data(), 0, 0, &arena); };
  }
  MS_RETURN_IF_ERROR(run_modular_kernel(*pf, *experts, in, &batch_, &expert_out_, y, overlap,
                                        max_tokens_across_ranks, &arena));
  if (shared_) axpy(1.0f, shared_out.data(), y, T * H);
  if (routing) {
    routing->topk_ids.assign(ids.begin(), ids.end());
    routing->topk_weights.assign(weights.begin(), weights.end());
  }
  return absl::OkStatus();
}

Status run_modular_kernel(PrepareFinalize& pf, const Experts& experts, const RoutedTokens& in,
                          ExpertBatch* batch, std::vector<float>* expert_out, float* y,
                          const std::function<void()>& overlap, int64_t max_tokens_across_ranks,
                          Arena* scratch) {
  const int64_t T = in.num_tokens, H = in.hidden, K = in.top_k;
  MS_ASSIGN_OR_RETURN(const int64_t num_chunks, pf.num_chunks(T, max_tokens_across_ranks));
  const int64_t limit = pf.max_tokens_per_chunk();
  const int64_t step = limit > 0 ? limit : T;
  for (int64_t c = 0; c < num_chunks; ++c) {
    // Ranks with fewer tokens run empty chunks: the backend's exchanges are collective.
    const int64_t t0 = std::min(T, c * step), t1 = std::min(T, t0 + step);
    RoutedTokens chunk{
        in.x + t0 * H, t1 - t0, H, in.topk_ids + t0 * K, in.topk_weights + t0 * K, K};
    MS_RETURN_IF_ERROR(pf.prepare(chunk, batch));
    expert_out->resize(static_cast<size_t>(batch->rows() * H));
    experts.apply(*batch, expert_out->data(), scratch);
    MS_RETURN_IF_ERROR(pf.finalize_begin(*batch, expert_out->data()));
    if (c == num_chunks - 1 && overlap) overlap();
    MS_RETURN_IF_ERROR(pf.finalize_end(y + t0 * H));
  }
  if (num_chunks == 0 && overlap) overlap();
  return absl::OkStatus();
}

StatusOr<MoeLayer> make_local_moe_layer(GateParams gate, Tensor gate_weight, Tensor bias,
                                        std::optional<GatedMlp> shared,
                                        std::shared_ptr<const ExpertWeights> experts,
                                        ActivationFormat format) {
  const int64_t E = gate.num_experts;
  if (static_cast<int64_t>(experts->experts.size()) != E) {
    return absl::InvalidArgumentError(
        absl::StrCat("moe: ", experts->experts.size(), " local experts, expected ", E));
  }
  std::vector<int32_t> map(E);
  std::iota(map.begin(), map.end(), 0);
  auto pf = std::make_unique<LocalPrepareFinalize>(format, std::move(map), E);
  std::unique_ptr<Experts> ex;
  if (format == ActivationFormat::kStandard) {
    ex = std::make_unique<GroupedExperts>(std::move(experts));
  } else {
    ex = std::make_unique<BatchedExperts>(std::move(experts));
  }
  return MoeLayer::create(gate, std::move(gate_weight), std::move(bias), std::move(shared),
                          std::move(pf), std::move(ex));
}

}  // namespace moeserve
