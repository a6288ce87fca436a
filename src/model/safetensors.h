// safetensors reading (from an mmap) and writing, with strict validation of the header:
// every malformed input is an error naming the file and tensor, never a crash.
// Thread-safety: an opened file is immutable and may be read from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"

namespace moeserve {

struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // offset into the data buffer (after the header)
  uint64_t end = 0;    // exclusive
};

struct SafetensorsHeader {
  uint64_t header_len = 0;  // N: bytes of JSON after the 8-byte length
  std::vector<TensorInfo> tensors;
  std::map<std::string, std::string> metadata;
};

// Parses and validates a whole file image (8-byte length + JSON header + buffer), given only
// its first bytes and the total file size; `source` names it in errors. Pure: fuzzable.
StatusOr<SafetensorsHeader> parse_safetensors_header(std::string_view prefix, uint64_t file_size,
                                                     std::string_view source);

class SafetensorsFile {
 public:
  static StatusOr<std::shared_ptr<SafetensorsFile>> open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const SafetensorsHeader& header() const { return header_; }
  const TensorInfo* find(std::string_view name) const;
  // A view into the mapping; keeps this file alive.
  StatusOr<Tensor> tensor(std::string_view name) const;

 private:
  SafetensorsFile() = default;
  std::string path_;
  SafetensorsHeader header_;
  std::map<std::string, size_t, std::less<>> index_;
  void* map_ = nullptr;
  size_t map_len_ = 0;
  const char* data_ = nullptr;  // start of the buffer
  std::weak_ptr<SafetensorsFile> self_;
};

// Collects tensors and writes one file the way the reference writer does (header padded to a
// multiple of 8 with spaces, tensors ordered by dtype alignment then name).
class SafetensorsWriter {
 public:
  void add(std::string name, Tensor t);
  void set_metadata(std::string key, std::string value);
  size_t total_bytes() const;
  Status write(const std::string& path) const;
  std::vector<std::string> names() const;

 private:
  std::vector<std::pair<std::string, Tensor>> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace moeserve
