#include "moe/experts.h"

#include "core/status.h"

namespace moeserve {
namespace {

// Runs every local expert with rows; each expert's GEMMs use all threads internally.
void run_experts(const ExpertWeights& w, const ExpertBatch& batch, float* out, Arena* scratch) {
  MS_CHECK(static_cast<int64_t>(w.experts.size()) == batch.num_local_experts);
  const int64_t H = batch.hidden;
  for (int64_t e = 0; e < batch.num_local_experts; ++e) {
    const int64_t n = batch.expert_num_tokens[e];
    if (n == 0) continue;
    const int64_t r = batch.row_begin(e);
    w.experts[e].forward(batch.a1.data() + r * H, n, out + r * H, 0, 0, scratch);
  }
}

}  // namespace

void GroupedExperts::apply(const ExpertBatch& batch, float* out, Arena* scratch) const {
  MS_CHECK(batch.format == ActivationFormat::kStandard);
  run_experts(*w_, batch, out, scratch);
}

void BatchedExperts::apply(const ExpertBatch& batch, float* out, Arena* scratch) const {
  MS_CHECK(batch.format == ActivationFormat::kBatched);
  run_experts(*w_, batch, out, scratch);
}

}  // namespace moeserve
