// Expert-parallel MoE kernels for a model: the all2all backend names (moeserve's and vLLM's),
// the experts format each backend dispatches in, and one set of PrepareFinalize backends
// shared by every MoE layer of a model (layers run one after another, so one backend, and in
// particular one set of all2all_ll registered buffers, serves them all).
//
// Backends (vLLM's --all2all-backend; vLLM's names are accepted as aliases):
//   allgather_reducescatter                   standard format (grouped experts)
//   all2all_ht   (deepep_high_throughput)   standard format (grouped experts)
//   all2all_ll   (deepep_low_latency)       batched format (batched experts)
//   auto         all2all_ht for steps with many tokens, all2all_ll for steps where every rank
//                brings at most max_tokens_per_rank tokens (decode); decided per forward call
//                from the token count agreed across ranks.
// Thread-safety: EpKernels is built once (collectively) and then used by one thread.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "comm/process_group.h"
#include "moe/ep_placement.h"
#include "moe/expert_weights.h"
#include "moe/moe_layer.h"

namespace moeserve {

enum class All2AllBackend { kAllGatherReduceScatter, kHighThroughput, kLowLatency, kAuto };

// Accepts "allgather_reducescatter", "all2all_ht", "all2all_ll", "auto" and vLLM's
// "deepep_high_throughput", "deepep_low_latency"; the error lists the choices.
StatusOr<All2AllBackend> parse_all2all_backend(const std::string& name);
const char* all2all_backend_name(All2AllBackend b);
// "grouped" (also "standard") or "batched".
StatusOr<ActivationFormat> parse_experts_format(const std::string& name);
const char* experts_format_name(ActivationFormat f);

struct EpKernelConfig {
  All2AllBackend backend = All2AllBackend::kAllGatherReduceScatter;
  // Unset: the backend's own format. Set: must match it (auto takes no explicit format).
  std::optional<ActivationFormat> experts_format;
  int64_t num_experts = 0;            // E, divisible by the group size
  int64_t hidden = 0;                 // H
  int64_t top_k = 0;                  // K
  int64_t max_tokens_per_rank = 256;  // all2all_ll's static per-rank capacity, and auto's switch
};

class EpKernels {
 public:
  // Collective over `group` (all2all_ll registers its buffers with every peer): every rank
  // calls it with the same config. `group` must outlive this object and every layer made.
  // Errors name the config field at fault (E not divisible by the group size, incompatible
  // experts format).
  static StatusOr<EpKernels> create(ProcessGroup* group, const EpKernelConfig& config);

  // One MoE layer over this rank's experts (`experts` indexed by local id, exactly
  // placement().num_local_experts(rank) of them), sharing this object's backends.
  StatusOr<MoeLayer> make_layer(GateParams gate, Tensor gate_weight, Tensor bias,
                                std::optional<GatedMlp> shared,
                                std::shared_ptr<const ExpertWeights> experts) const;

  const ContiguousPlacement& placement() const { return placement_; }
  ProcessGroup* group() const { return group_; }
  All2AllBackend backend() const { return config_.backend; }
  // Whether layers need the token count agreed across ranks for each forward (auto).
  bool needs_agreed_tokens() const { return config_.backend == All2AllBackend::kAuto; }

 private:
  EpKernels() = default;
  ProcessGroup* group_ = nullptr;
  EpKernelConfig config_;
  ContiguousPlacement placement_;
  ActivationFormat format_ = ActivationFormat::kStandard;  // of main_
  std::shared_ptr<PrepareFinalize> main_;  // allgather_reducescatter, all2all_ht or all2all_ll
  std::shared_ptr<PrepareFinalize> ll_;    // auto only: all2all_ll beside all2all_ht
};

}  // namespace moeserve
