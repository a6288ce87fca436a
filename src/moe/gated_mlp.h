// A SwiGLU MLP: y = down(silu(gate(x)) * up(x)). Used for dense layers, shared experts and
// each routed expert. Thread-safety: forward() from one thread at a time per object.
#pragma once

#include "core/arena.h"
#include "kernels/linear.h"

namespace moeserve {

class GatedMlp {
 public:
  GatedMlp() = default;
  // gate, up: [I, H]; down: [H, I].
  static StatusOr<GatedMlp> create(Tensor gate, Tensor up, Tensor down);

  int64_t hidden() const { return gate_.in_features(); }
  int64_t inter() const { return gate_.out_features(); }
  // x: [m, H] (row stride ldx, 0 = H) -> y: [m, H] (row stride ldy, 0 = H); y is overwritten.
  // Temporaries ([m, 3I] floats) come from `scratch` when given (the model's step arena),
  // else from the heap.
  void forward(const float* x, int64_t m, float* y, int64_t ldx = 0, int64_t ldy = 0,
               Arena* scratch = nullptr) const;

 private:
  Linear gate_, up_, down_;
};

}  // namespace moeserve
