// A Hugging Face checkpoint directory: model.safetensors, or shards listed by
// model.safetensors.index.json (only files in its weight_map are opened).
// Thread-safety: immutable after open.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "model/safetensors.h"

namespace moeserve {

class Checkpoint {
 public:
  // `progress` (may be empty) is called with (files opened, total files).
  static StatusOr<Checkpoint> open(const std::string& dir,
                                   const std::function<void(size_t, size_t)>& progress = {});
  const std::string& dir() const { return dir_; }
  bool has(std::string_view name) const;
  // The tensor as stored (view into the mmap). Error names the tensor if missing.
  StatusOr<Tensor> get(std::string_view name) const;
  // The file that holds `name`, for error messages.
  std::string file_of(std::string_view name) const;
  std::vector<std::string> names() const;

 private:
  std::string dir_;
  std::map<std::string, std::shared_ptr<SafetensorsFile>, std::less<>> by_name_;
};

// Writes `writer`'s tensors as one model.safetensors, or as `num_shards` files
// model-0000i-of-0000N.safetensors plus model.safetensors.index.json.
class CheckpointWriter {
 public:
  void add(std::string name, Tensor t) { tensors_.emplace_back(std::move(name), std::move(t)); }
  Status write(const std::string& dir, int num_shards) const;

 private:
  std::vector<std::pair<std::string, Tensor>> tensors_;
};

}  // namespace moeserve
