#include "moe/gated_mlp.h"

#include <span>

#include "kernels/ops.h"

namespace moeserve {

StatusOr<GatedMlp> GatedMlp::create(Tensor gate, Tensor up, Tensor down) {
  if (gate.rank() != 2 || up.rank() != 2 || down.rank() != 2 || gate.shape() != up.shape() ||
      down.dim(0) != gate.dim(1) || down.dim(1) != gate.dim(0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "MLP weight shapes disagree: gate ", gate.shape_string(), ", up ", up.shape_string(),
        ", down ", down.shape_string()));
  }
  GatedMlp m;
  MS_ASSIGN_OR_RETURN(m.gate_, Linear::create(std::move(gate)));
  MS_ASSIGN_OR_RETURN(m.up_, Linear::create(std::move(up)));
  MS_ASSIGN_OR_RETURN(m.down_, Linear::create(std::move(down)));
  return m;
}

void GatedMlp::forward(const float* x, int64_t m, float* y, int64_t ldx, int64_t ldy,
                       Arena* scratch) const {
  if (m <= 0) return;
  const int64_t inter = this->inter();
  Arena local;
  Arena& arena = scratch != nullptr ? *scratch : local;
  Arena::Scope scope(arena);
  std::span<float> gate_up = arena.alloc<float>(m * 2 * inter);  // [m, 2I] = [gate | up]
  gate_.forward(x, m, gate_up.data(), ldx, 2 * inter);
  up_.forward(x, m, gate_up.data() + inter, ldx, 2 * inter);
  std::span<float> act = arena.alloc<float>(m * inter);  // [m, I]
  silu_mul(gate_up.data(), act.data(), m, inter);
  down_.forward(act.data(), m, y, 0, ldy);
}

}  // namespace moeserve
