// Experts implementations: `grouped` runs each expert over its contiguous rows of the
// standard format (a grouped GEMM over variable sizes); `batched` runs each expert over the
// valid rows of its padded slab [E_loc, max_tokens, H].
#pragma once

#include <memory>

#include "moe/expert_weights.h"
#include "moe/modular_kernel.h"

namespace moeserve {

class GroupedExperts final : public Experts {
 public:
  explicit GroupedExperts(std::shared_ptr<const ExpertWeights> w) : w_(std::move(w)) {}
  ActivationFormat format() const override { return ActivationFormat::kStandard; }
  const char* name() const override { return "grouped"; }
  void apply(const ExpertBatch& batch, float* out, Arena* scratch) const override;

 private:
  std::shared_ptr<const ExpertWeights> w_;
};

class BatchedExperts final : public Experts {
 public:
  explicit BatchedExperts(std::shared_ptr<const ExpertWeights> w) : w_(std::move(w)) {}
  ActivationFormat format() const override { return ActivationFormat::kBatched; }
  const char* name() const override { return "batched"; }
  void apply(const ExpertBatch& batch, float* out, Arena* scratch) const override;

 private:
  std::shared_ptr<const ExpertWeights> w_;
};

}  // namespace moeserve
