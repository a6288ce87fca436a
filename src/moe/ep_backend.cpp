#include "moe/ep_backend.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "moe/all2all_ht_prepare_finalize.h"
#include "moe/all2all_ll_prepare_finalize.h"
#include "moe/allgather_reducescatter_prepare_finalize.h"
#include "moe/experts.h"

namespace moeserve {

StatusOr<All2AllBackend> parse_all2all_backend(const std::string& name) {
  if (name == "allgather_reducescatter") return All2AllBackend::kAllGatherReduceScatter;
  if (name == "all2all_ht" || name == "deepep_high_throughput") {
    return All2AllBackend::kHighThroughput;
  }
  if (name == "all2all_ll" || name == "deepep_low_latency") return All2AllBackend::kLowLatency;
  if (name == "auto") return All2AllBackend::kAuto;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown all2all backend '", name,
      "'; choose allgather_reducescatter, all2all_ht (deepep_high_throughput), all2all_ll "
      "(deepep_low_latency) or auto"));
}

const char* all2all_backend_name(All2AllBackend b) {
  switch (b) {
    case All2AllBackend::kAllGatherReduceScatter:
      return "allgather_reducescatter";
    case All2AllBackend::kHighThroughput:
      return "all2all_ht";
    case All2AllBackend::kLowLatency:
      return "all2all_ll";
    case All2AllBackend::kAuto:
      return "auto";
  }
  return "?";
}

StatusOr<ActivationFormat> parse_experts_format(const std::string& name) {
  if (name == "grouped" || name == "standard") return ActivationFormat::kStandard;
  if (name == "batched") return ActivationFormat::kBatched;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown experts format '", name, "'; choose grouped or batched"));
}

const char* experts_format_name(ActivationFormat f) {
  return f == ActivationFormat::kStandard ? "grouped" : "batched";
}

namespace {

std::unique_ptr<Experts> experts_for(ActivationFormat f, std::shared_ptr<const ExpertWeights> w) {
  if (f == ActivationFormat::kStandard) return std::make_unique<GroupedExperts>(std::move(w));
  return std::make_unique<BatchedExperts>(std::move(w));
}

StatusOr<std::shared_ptr<PrepareFinalize>> make_ll(ProcessGroup* g, const EpKernelConfig& c) {
  MS_ASSIGN_OR_RETURN(
      auto pf, All2AllLlPrepareFinalize::create(
                   g, LowLatencyConfig{c.num_experts, c.hidden, c.top_k, c.max_tokens_per_rank}));
  return std::shared_ptr<PrepareFinalize>(std::move(pf));
}

}  // namespace

StatusOr<EpKernels> EpKernels::create(ProcessGroup* group, const EpKernelConfig& c) {
  if (group == nullptr) return absl::InvalidArgumentError("expert parallel: no process group");
  const int n = group->world_size();
  if (c.num_experts <= 0 || c.num_experts % n != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("config.json: n_routed_experts (%d) is not divisible by the "
                        "expert-parallel size (%d)",
                        c.num_experts, n));
  }
  const bool uses_ll =
      c.backend == All2AllBackend::kLowLatency || c.backend == All2AllBackend::kAuto;
  if (uses_ll && c.max_tokens_per_rank <= 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("expert parallel: max_tokens_per_rank must be positive for %s (got %d)",
                        all2all_backend_name(c.backend), c.max_tokens_per_rank));
  }
  const ActivationFormat native = c.backend == All2AllBackend::kLowLatency
                                      ? ActivationFormat::kBatched
                                      : ActivationFormat::kStandard;
  if (c.experts_format) {
    if (c.backend == All2AllBackend::kAuto) {
      return absl::InvalidArgumentError(absl::StrCat(
          "all2all backend auto runs all2all_ht with grouped experts and all2all_ll with "
          "batched experts; it takes no experts format (got '",
          experts_format_name(*c.experts_format), "')"));
    }
    if (*c.experts_format != native) {
      return absl::InvalidArgumentError(
          absl::StrCat("all2all backend ", all2all_backend_name(c.backend), " dispatches in the ",
                       experts_format_name(native), " experts format; experts format '",
                       experts_format_name(*c.experts_format), "' is not compatible (use '",
                       experts_format_name(native), "')"));
    }
  }
  EpKernels k;
  k.group_ = group;
  k.config_ = c;
  k.format_ = native;
  MS_ASSIGN_OR_RETURN(k.placement_, ContiguousPlacement::create(c.num_experts, n));
  switch (c.backend) {
    case All2AllBackend::kAllGatherReduceScatter: {
      MS_ASSIGN_OR_RETURN(auto pf,
                          AllGatherReduceScatterPrepareFinalize::create(group, c.num_experts));
      k.main_ = std::move(pf);
      break;
    }
    case All2AllBackend::kHighThroughput:
    case All2AllBackend::kAuto: {
      MS_ASSIGN_OR_RETURN(auto pf, All2AllHtPrepareFinalize::create(group, c.num_experts));
      k.main_ = std::move(pf);
      break;
    }
    case All2AllBackend::kLowLatency: {
      MS_ASSIGN_OR_RETURN(k.main_, make_ll(group, c));
      break;
    }
  }
  if (c.backend == All2AllBackend::kAuto) {
    MS_ASSIGN_OR_RETURN(k.ll_, make_ll(group, c));
  }
  return k;
}

StatusOr<MoeLayer> EpKernels::make_layer(GateParams gate, Tensor gate_weight, Tensor bias,
                                         std::optional<GatedMlp> shared,
                                         std::shared_ptr<const ExpertWeights> experts) const {
  const int64_t want = placement_.num_local_experts(group_->rank());
  if (static_cast<int64_t>(experts->experts.size()) != want) {
    return absl::InvalidArgumentError(
        absl::StrCat("moe: ", experts->experts.size(), " local experts, expected ", want));
  }
  if (gate.num_experts != config_.num_experts || gate.top_k != config_.top_k) {
    return absl::InvalidArgumentError("moe: layer gate disagrees with the expert-parallel config");
  }
  MS_ASSIGN_OR_RETURN(MoeLayer layer,
                      MoeLayer::create(gate, std::move(gate_weight), std::move(bias),
                                       std::move(shared), main_, experts_for(format_, experts)));
  if (ll_) {
    MS_RETURN_IF_ERROR(layer.set_low_latency_kernel(
        ll_, experts_for(ActivationFormat::kBatched, experts), config_.max_tokens_per_rank));
  }
  return layer;
}

}  // namespace moeserve
