#include "model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <set>
#include <utility>

#include "nlohmann/json.hpp"

namespace moeserve {
namespace {

using Json = nlohmann::json;

constexpr uint64_t kMaxHeaderSize = 100'000'000;
// Top-level object → tensor entry → shape/offset array: anything deeper is malformed.
constexpr size_t kMaxJsonDepth = 3;

// Every dtype name of the safetensors format, with its size in bits; only the ones with a
// DType are loadable.
struct DTypeSpelling {
  std::string_view name;
  int bits;
};
constexpr DTypeSpelling kAllDTypes[] = {
    {"BOOL", 8},        {"F4", 4},      {"F6_E2M3", 6}, {"F6_E3M2", 6}, {"U8", 8},
    {"I8", 8},          {"F8_E5M2", 8}, {"F8_E4M3", 8}, {"F8_E8M0", 8}, {"F8_E4M3FNUZ", 8},
    {"F8_E5M2FNUZ", 8}, {"I16", 16},    {"U16", 16},    {"F16", 16},    {"BF16", 16},
    {"I32", 32},        {"U32", 32},    {"F32", 32},    {"I64", 64},    {"U64", 64},
    {"F64", 64},        {"C64", 64},
};

std::string quote_name(std::string_view s) {
  // Names in errors come from untrusted files: cap the length, keep them on one line.
  std::string out = "'";
  const size_t n = std::min<size_t>(s.size(), 200);
  for (size_t i = 0; i < n; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) {
      out += absl::StrFormat("\\x%02x", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > n) out += "...";
  return out + "'";
}

// This Abseil's string_view is its own type: convert explicitly.
absl::string_view av(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

Status file_error(std::string_view source, std::string_view msg) {
  return absl::InvalidArgumentError(absl::StrCat("safetensors file ", av(source), ": ", av(msg)));
}

Status tensor_error(std::string_view source, std::string_view tensor, std::string_view msg) {
  return absl::InvalidArgumentError(absl::StrCat("safetensors file ", av(source), ": tensor ",
                                                 quote_name(tensor), ": ", av(msg)));
}

// Thrown from the parser callback; caught in parse_header_json.
struct HeaderShapeError {
  std::string message;
};

// Parses the header text, rejecting duplicate keys in any object and nesting deeper than a
// valid header can be (which also bounds the parser's work on hostile input).
StatusOr<Json> parse_header_json(std::string_view text, std::string_view source) {
  std::vector<std::optional<std::set<std::string>>> keys;  // one entry per open container
  auto callback = [&keys](int /*depth*/, Json::parse_event_t event, Json& parsed) -> bool {
    switch (event) {
      case Json::parse_event_t::object_start:
      case Json::parse_event_t::array_start:
        if (keys.size() >= kMaxJsonDepth) {
          throw HeaderShapeError{"JSON nesting is deeper than a safetensors header allows"};
        }
        if (event == Json::parse_event_t::object_start) {
          keys.emplace_back(std::set<std::string>());
        } else {
          keys.emplace_back(std::nullopt);
        }
        break;
      case Json::parse_event_t::object_end:
      case Json::parse_event_t::array_end:
        if (!keys.empty()) keys.pop_back();
        break;
      case Json::parse_event_t::key:
        if (!keys.empty() && keys.back().has_value() && parsed.is_string()) {
          const std::string& k = parsed.get_ref<const std::string&>();
          if (!keys.back()->insert(k).second) {
            throw HeaderShapeError{absl::StrCat("duplicate key ", quote_name(k))};
          }
        }
        break;
      case Json::parse_event_t::value:
        break;
    }
    return true;
  };
  try {
    return Json::parse(text.begin(), text.end(), callback, /*allow_exceptions=*/true,
                       /*ignore_comments=*/false);
  } catch (const HeaderShapeError& e) {
    return file_error(source, absl::StrCat("header: ", e.message));
  } catch (const Json::exception& e) {
    return file_error(source, absl::StrCat("header is not valid JSON: ", e.what()));
  }
}

// A JSON integer in [0, max], or nullopt (floats, negatives, huge values, other types).
std::optional<uint64_t> as_uint(const Json& v, uint64_t max) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u <= max) return u;
    return std::nullopt;
  }
  if (v.is_number_integer()) {
    const int64_t i = v.get<int64_t>();
    if (i >= 0 && static_cast<uint64_t>(i) <= max) return static_cast<uint64_t>(i);
  }
  return std::nullopt;
}

StatusOr<TensorInfo> parse_entry(const std::string& name, const Json& entry,
                                 std::string_view source) {
  if (!entry.is_object()) {
    return tensor_error(source, name, "entry must be an object with dtype, shape, data_offsets");
  }
  for (const auto& [key, _] : entry.items()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets") {
      return tensor_error(source, name, absl::StrCat("unexpected field ", quote_name(key)));
    }
  }
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!entry.contains(key)) {
      return tensor_error(source, name, absl::StrCat("missing field '", key, "'"));
    }
  }
  TensorInfo info;
  info.name = name;

  const Json& dt = entry["dtype"];
  if (!dt.is_string()) return tensor_error(source, name, "dtype must be a string");
  const std::string& dt_name = dt.get_ref<const std::string&>();
  const auto known = std::find_if(std::begin(kAllDTypes), std::end(kAllDTypes),
                                  [&](const DTypeSpelling& d) { return d.name == dt_name; });
  if (known == std::end(kAllDTypes)) {
    return tensor_error(source, name, absl::StrCat("unknown dtype ", quote_name(dt_name)));
  }
  const std::optional<DType> dtype = dtype_from_name(dt_name);
  if (!dtype) {
    return tensor_error(source, name,
                        absl::StrCat("dtype ", dt_name, " (", known->bits,
                                     " bits) is valid safetensors but not supported; supported: "
                                     "F32 F16 BF16 F8_E4M3 F64 I32 I64 U8 I8 BOOL"));
  }
  info.dtype = *dtype;

  const Json& shape = entry["shape"];
  if (!shape.is_array()) return tensor_error(source, name, "shape must be a list of integers");
  uint64_t numel = 1;
  bool overflow = false;
  for (const Json& d : shape) {
    const std::optional<uint64_t> dim =
        as_uint(d, static_cast<uint64_t>(std::numeric_limits<int64_t>::max()));
    if (!dim) {
      return tensor_error(
          source, name,
          absl::StrCat("shape must be a list of non-negative integers, got ", shape.dump()));
    }
    info.shape.push_back(static_cast<int64_t>(*dim));
    overflow = overflow || __builtin_mul_overflow(numel, *dim, &numel);
  }
  // A zero dimension makes the product 0 however large the others are.
  if (std::find(info.shape.begin(), info.shape.end(), 0) != info.shape.end()) {
    numel = 0;
    overflow = false;
  }
  uint64_t nbytes = 0;
  if (overflow || numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
      __builtin_mul_overflow(numel, static_cast<uint64_t>(dtype_size(info.dtype)), &nbytes)) {
    return tensor_error(source, name,
                        absl::StrCat("shape ", shape.dump(), " has too many elements"));
  }

  const Json& offs = entry["data_offsets"];
  if (!offs.is_array() || offs.size() != 2) {
    return tensor_error(source, name, "data_offsets must be a list of two integers");
  }
  const std::optional<uint64_t> begin = as_uint(offs[0], std::numeric_limits<uint64_t>::max());
  const std::optional<uint64_t> end = as_uint(offs[1], std::numeric_limits<uint64_t>::max());
  if (!begin || !end) {
    return tensor_error(
        source, name,
        absl::StrCat("data_offsets must be two non-negative integers, got ", offs.dump()));
  }
  if (*begin > *end) {
    return tensor_error(source, name, absl::StrCat("data_offsets begin ", *begin, " > end ", *end));
  }
  info.begin = *begin;
  info.end = *end;
  if (info.end - info.begin != nbytes) {
    return tensor_error(
        source, name,
        absl::StrCat("data_offsets [", info.begin, ", ", info.end, "] span ", info.end - info.begin,
                     " bytes but dtype ", dt_name, " shape ", shape.dump(), " needs ", nbytes));
  }
  return info;
}

}  // namespace

StatusOr<SafetensorsHeader> parse_safetensors_header(std::string_view prefix, uint64_t file_size,
                                                     std::string_view source) {
  if (file_size < 8 || prefix.size() < 8) {
    return file_error(source, absl::StrCat("file is ", file_size,
                                           " bytes, shorter than the 8-byte header length"));
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(prefix[i]);
  if (n > kMaxHeaderSize) {
    return file_error(source, absl::StrCat("header length ", n, " exceeds the limit of ",
                                           kMaxHeaderSize, " bytes"));
  }
  if (n > file_size - 8) {
    return file_error(source, absl::StrCat("header length ", n, " runs past the end of the ",
                                           file_size, "-byte file"));
  }
  if (prefix.size() - 8 < n) {
    return file_error(
        source, absl::StrCat("only ", prefix.size(), " bytes given for a ", n, "-byte header"));
  }
  MS_ASSIGN_OR_RETURN(Json root, parse_header_json(prefix.substr(8, n), source));
  if (!root.is_object()) return file_error(source, "header must be a JSON object");

  SafetensorsHeader header;
  header.header_len = n;
  for (const auto& [name, entry] : root.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) {
        return file_error(source, "__metadata__ must be an object of string to string");
      }
      for (const auto& [k, v] : entry.items()) {
        if (!v.is_string()) {
          return file_error(source, absl::StrCat("__metadata__ value for ", quote_name(k),
                                                 " must be a string, got ", v.type_name()));
        }
        header.metadata.emplace(k, v.get<std::string>());
      }
      continue;
    }
    MS_ASSIGN_OR_RETURN(TensorInfo info, parse_entry(name, entry, source));
    header.tensors.push_back(std::move(info));
  }

  // Sorted by offsets the tensors must tile [0, buffer end) with no hole and no overlap.
  std::sort(header.tensors.begin(), header.tensors.end(),
            [](const TensorInfo& a, const TensorInfo& b) {
              return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
            });
  const uint64_t buffer_size = file_size - 8 - n;
  uint64_t expected = 0;
  for (const TensorInfo& t : header.tensors) {
    if (t.end > buffer_size) {
      return tensor_error(source, t.name,
                          absl::StrCat("data_offsets [", t.begin, ", ", t.end, "] run past the ",
                                       buffer_size, "-byte data buffer"));
    }
    if (t.begin > expected) {
      return tensor_error(source, t.name,
                          absl::StrCat("data starts at ", t.begin, " leaving a hole after byte ",
                                       expected, " of the data buffer"));
    }
    if (t.begin < expected) {
      return tensor_error(source, t.name,
                          absl::StrCat("data [", t.begin, ", ", t.end,
                                       ") overlaps the previous tensor, which ends at ", expected));
    }
    expected = t.end;
  }
  if (expected != buffer_size) {
    return file_error(source, absl::StrCat("file is ", file_size, " bytes but the header (", n,
                                           " bytes) and tensors (", expected,
                                           " bytes) account for ", 8 + n + expected));
  }
  return header;
}

// ---------------------------------------------------------------------------------------------

StatusOr<std::shared_ptr<SafetensorsFile>> SafetensorsFile::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::NotFoundError(
        absl::StrCat("cannot open safetensors file ", path, ": ", std::strerror(errno)));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat("safetensors file ", path, ": not a regular file"));
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  if (size > 0) {
    void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      return absl::InternalError(
          absl::StrCat("cannot mmap safetensors file ", path, ": ", std::strerror(err)));
    }
    file->map_ = map;
    file->map_len_ = size;
  }
  ::close(fd);
  const std::string_view image(static_cast<const char*>(file->map_), file->map_len_);
  MS_ASSIGN_OR_RETURN(file->header_, parse_safetensors_header(image, size, path));
  file->data_ = static_cast<const char*>(file->map_) + 8 + file->header_.header_len;
  for (size_t i = 0; i < file->header_.tensors.size(); ++i) {
    file->index_.emplace(file->header_.tensors[i].name, i);
  }
  file->self_ = file;
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr) ::munmap(map_, map_len_);
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &header_.tensors[it->second];
}

StatusOr<Tensor> SafetensorsFile::tensor(std::string_view name) const {
  const TensorInfo* info = find(name);
  if (info == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("tensor ", quote_name(name), " is not in safetensors file ", path_));
  }
  // The mapping is read-only: callers must not write through the returned view.
  void* data = const_cast<char*>(data_ + info->begin);
  return Tensor::view(data, info->dtype, info->shape, std::shared_ptr<void>(self_.lock()));
}

// ---------------------------------------------------------------------------------------------

void SafetensorsWriter::add(std::string name, Tensor t) {
  tensors_.emplace_back(std::move(name), std::move(t));
}

void SafetensorsWriter::set_metadata(std::string key, std::string value) {
  metadata_[std::move(key)] = std::move(value);
}

size_t SafetensorsWriter::total_bytes() const {
  size_t total = 0;
  for (const auto& [_, t] : tensors_) total += t.nbytes();
  return total;
}

std::vector<std::string> SafetensorsWriter::names() const {
  std::vector<std::string> out;
  out.reserve(tensors_.size());
  for (const auto& [name, _] : tensors_) out.push_back(name);
  return out;
}

Status SafetensorsWriter::write(const std::string& path) const {
  std::vector<const std::pair<std::string, Tensor>*> order;
  std::set<std::string_view> seen;
  for (const auto& entry : tensors_) {
    if (entry.first == "__metadata__") {
      return absl::InvalidArgumentError(
          absl::StrCat("writing ", path, ": '__metadata__' is reserved, not a tensor name"));
    }
    if (!seen.insert(entry.first).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("writing ", path, ": tensor ", quote_name(entry.first), " added twice"));
    }
    if (!entry.second.defined()) {
      return absl::InvalidArgumentError(
          absl::StrCat("writing ", path, ": tensor ", quote_name(entry.first), " has no data"));
    }
    order.push_back(&entry);
  }
  // Largest alignment first keeps every tensor aligned to its element size.
  std::sort(order.begin(), order.end(), [](const auto* a, const auto* b) {
    const size_t sa = dtype_size(a->second.dtype());
    const size_t sb = dtype_size(b->second.dtype());
    if (sa != sb) return sa > sb;
    return a->first < b->first;
  });

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  nlohmann::ordered_json meta = nlohmann::ordered_json::object();
  meta["format"] = "pt";
  for (const auto& [k, v] : metadata_) meta[k] = v;
  header["__metadata__"] = meta;
  uint64_t offset = 0;
  for (const auto* entry : order) {
    const Tensor& t = entry->second;
    nlohmann::ordered_json e;
    e["dtype"] = std::string(dtype_name(t.dtype()));
    e["shape"] = t.shape();
    e["data_offsets"] = {offset, offset + t.nbytes()};
    offset += t.nbytes();
    header[entry->first] = std::move(e);
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(text.size() >> (8 * i));

  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create ", path, ": ", std::strerror(errno)));
  }
  bool ok =
      std::fwrite(len, 1, 8, f) == 8 && std::fwrite(text.data(), 1, text.size(), f) == text.size();
  for (const auto* entry : order) {
    if (!ok) break;
    const Tensor& t = entry->second;
    ok = t.nbytes() == 0 || std::fwrite(t.raw(), 1, t.nbytes(), f) == t.nbytes();
  }
  const int write_errno = errno;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) {
    return absl::DataLossError(
        absl::StrCat("writing ", path, " failed: ", std::strerror(write_errno)));
  }
  return absl::OkStatus();
}

}  // namespace moeserve
