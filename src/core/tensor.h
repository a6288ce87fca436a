// A dense, row-major tensor: dtype + shape over raw memory. Either owns a 64-byte-aligned
// buffer or views memory owned elsewhere (an mmap'd checkpoint, another tensor).
// Not thread-safe to mutate; concurrent reads are fine.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace moeserve {

class Tensor {
 public:
  Tensor() = default;
  // Allocates zero-initialised storage.
  static Tensor empty(DType dtype, std::vector<int64_t> shape);
  // Views `data` without owning it; `keepalive` (may be null) keeps the owner alive.
  static Tensor view(void* data, DType dtype, std::vector<int64_t> shape,
                     std::shared_ptr<void> keepalive = nullptr);

  DType dtype() const { return dtype_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t dim(int i) const { return shape_[i < 0 ? shape_.size() + i : i]; }
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t numel() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  bool defined() const { return data_ != nullptr || numel() == 0; }

  void* raw() const { return data_; }
  template <typename T>
  T* data() const { return static_cast<T*>(data_); }

  // Rows [begin, end) of the outermost dimension, as a view.
  Tensor slice_rows(int64_t begin, int64_t end) const;
  // Same memory, new shape with the same element count.
  Tensor reshape(std::vector<int64_t> shape) const;

  std::string shape_string() const;

 private:
  std::shared_ptr<void> owner_;
  void* data_ = nullptr;
  DType dtype_ = DType::kF32;
  std::vector<int64_t> shape_;
};

// 64-byte aligned allocation, freed with free().
void* aligned_alloc64(size_t bytes);

}  // namespace moeserve
