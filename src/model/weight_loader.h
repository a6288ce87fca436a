// Turns checkpoint tensors into the weights the runtime computes with, checking each shape
// against config.json. BF16/F32 linear weights stay zero-copy views of the mmap; F16 is widened
// to F32; F8_E4M3 with its weight_scale_inv is block-dequantised to BF16. Errors name the
// tensor and the file that holds it.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "model/checkpoint.h"
#include "model/config.h"

namespace moeserve {

class WeightLoader {
 public:
  WeightLoader(const Checkpoint& ckpt, const ModelConfig& cfg) : ckpt_(ckpt), cfg_(cfg) {}

  // A linear weight [out, in] in F32 or BF16.
  StatusOr<Tensor> linear(const std::string& name, int64_t out, int64_t in) const;
  // A 1-D vector (norm weight, bias) as F32 values.
  StatusOr<Tensor> vector_f32(const std::string& name, int64_t n) const;
  // The embedding table [vocab, hidden] in F32 or BF16.
  StatusOr<Tensor> embedding(const std::string& name, int64_t vocab, int64_t hidden) const {
    return linear(name, vocab, hidden);
  }
  bool has(const std::string& name) const { return ckpt_.has(name); }

 private:
  Status check_shape(const std::string& name, const Tensor& t,
                     const std::vector<int64_t>& expected) const;
  const Checkpoint& ckpt_;
  const ModelConfig& cfg_;
};

}  // namespace moeserve
