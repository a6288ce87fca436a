#include "moe/ep_placement.h"

namespace moeserve {

StatusOr<ContiguousPlacement> ContiguousPlacement::create(int64_t num_experts, int world_size) {
  if (world_size < 1 || num_experts < world_size) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "expert parallel: %d experts cannot be spread over %d ranks (each rank needs at least "
        "one)",
        num_experts, world_size));
  }
  ContiguousPlacement p;
  p.num_experts_ = num_experts;
  p.world_ = world_size;
  p.owner_.resize(num_experts);
  for (int r = 0; r < world_size; ++r) {
    for (int64_t e = p.first_expert(r); e < p.first_expert(r + 1); ++e) p.owner_[e] = r;
  }
  return p;
}

std::vector<int32_t> ContiguousPlacement::expert_map(int rank) const {
  std::vector<int32_t> map(num_experts_, -1);
  const int64_t first = first_expert(rank);
  for (int64_t e = 0; e < num_local_experts(rank); ++e) {
    map[first + e] = static_cast<int32_t>(e);
  }
  return map;
}

}  // namespace moeserve
