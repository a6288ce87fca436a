// The routed experts held by this rank, indexed by local expert id.
#pragma once

#include <vector>

#include "moe/gated_mlp.h"

namespace moeserve {

struct ExpertWeights {
  std::vector<GatedMlp> experts;  // [E_loc]
  int64_t hidden = 0;
};

}  // namespace moeserve
