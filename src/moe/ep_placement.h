// Contiguous expert placement for expert parallelism (vLLM's default "linear" placement):
// rank r of N holds global experts [r*E/N, (r+1)*E/N). Plain data, immutable after create.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"

namespace moeserve {

class ContiguousPlacement {
 public:
  static StatusOr<ContiguousPlacement> create(int64_t num_experts, int world_size);

  int64_t num_experts() const { return num_experts_; }
  int world_size() const { return world_; }
  int64_t first_expert(int rank) const { return rank * num_experts_ / world_; }
  int64_t num_local_experts(int rank) const { return first_expert(rank + 1) - first_expert(rank); }
  // Rank holding global expert e (0 <= e < E).
  int owner(int64_t e) const { return owner_[e]; }
  // Global id -> local id on `rank`, or -1 for experts held elsewhere. Size E.
  std::vector<int32_t> expert_map(int rank) const;

 private:
  int64_t num_experts_ = 0;
  int world_ = 1;
  std::vector<int32_t> owner_;  // [E]
};

}  // namespace moeserve
