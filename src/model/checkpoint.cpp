#include "model/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <system_error>

#include "nlohmann/json.hpp"

namespace moeserve {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

constexpr char kSingleFile[] = "model.safetensors";
constexpr char kIndexFile[] = "model.safetensors.index.json";

StatusOr<std::string> read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path.string()));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("error reading ", path.string()));
  return ss.str();
}

// The shard files named by an index, with the tensor → file map it declares.
struct IndexContents {
  std::vector<std::string> files;  // sorted, unique
  std::map<std::string, std::string> weight_map;
};

StatusOr<IndexContents> read_index(const fs::path& path) {
  const std::string where = path.string();
  MS_ASSIGN_OR_RETURN(std::string text, read_text(path));
  Json root;
  try {
    root = Json::parse(text);
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": not valid JSON: ", e.what()));
  }
  if (!root.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": must be a JSON object"));
  }
  if (root.contains("metadata") && !root["metadata"].is_object() && !root["metadata"].is_null()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": \"metadata\" must be an object"));
  }
  if (!root.contains("weight_map") || !root["weight_map"].is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": \"weight_map\" must be an object of tensor name to file name"));
  }
  IndexContents out;
  std::set<std::string> files;
  for (const auto& [name, file] : root["weight_map"].items()) {
    if (!file.is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": weight_map entry for '", name, "' must be a file name string"));
    }
    const std::string& f = file.get_ref<const std::string&>();
    const fs::path p(f);
    if (f.empty() || p.is_absolute() ||
        std::any_of(p.begin(), p.end(), [](const fs::path& part) { return part == ".."; })) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": weight_map entry for '", name, "' names '", f,
                       "', which is not a file inside the checkpoint directory"));
    }
    files.insert(f);
    out.weight_map.emplace(name, f);
  }
  out.files.assign(files.begin(), files.end());
  return out;
}

std::string shard_name(int i, int n) {
  return absl::StrFormat("model-%05d-of-%05d.safetensors", i, n);
}

}  // namespace

StatusOr<Checkpoint> Checkpoint::open(const std::string& dir,
                                      const std::function<void(size_t, size_t)>& progress) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return absl::NotFoundError(absl::StrCat("checkpoint directory ", dir, " does not exist"));
  }
  const fs::path root(dir);
  std::vector<std::string> files;
  std::optional<IndexContents> index;
  if (fs::exists(root / kIndexFile, ec)) {
    MS_ASSIGN_OR_RETURN(index, read_index(root / kIndexFile));
    files = index->files;
    if (files.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat((root / kIndexFile).string(), ": weight_map lists no tensors"));
    }
    for (const std::string& f : files) {
      if (!fs::is_regular_file(root / f, ec)) {
        return absl::NotFoundError(absl::StrCat((root / kIndexFile).string(), " lists ", f,
                                                ", which is missing from ", dir));
      }
    }
  } else if (fs::is_regular_file(root / kSingleFile, ec)) {
    files.push_back(kSingleFile);
  } else {
    for (const auto& entry : fs::directory_iterator(root, ec)) {
      if (entry.is_regular_file(ec) && entry.path().extension() == ".safetensors") {
        files.push_back(entry.path().filename().string());
      }
    }
    if (ec) return absl::InternalError(absl::StrCat("cannot list ", dir, ": ", ec.message()));
    std::sort(files.begin(), files.end());
    if (files.empty()) {
      return absl::NotFoundError(
          absl::StrCat("no .safetensors files (and no ", kIndexFile, ") in ", dir));
    }
  }

  Checkpoint ckpt;
  ckpt.dir_ = dir;
  if (progress) progress(0, files.size());
  for (size_t i = 0; i < files.size(); ++i) {
    MS_ASSIGN_OR_RETURN(std::shared_ptr<SafetensorsFile> file,
                        SafetensorsFile::open((root / files[i]).string()));
    for (const TensorInfo& t : file->header().tensors) {
      const auto [it, inserted] = ckpt.by_name_.emplace(t.name, file);
      if (!inserted) {
        return absl::InvalidArgumentError(absl::StrCat("tensor '", t.name, "' is in both ",
                                                       it->second->path(), " and ", file->path()));
      }
    }
    if (progress) progress(i + 1, files.size());
  }
  if (index) {
    for (const auto& [name, f] : index->weight_map) {
      const auto it = ckpt.by_name_.find(name);
      const std::string listed = (root / f).string();
      if (it == ckpt.by_name_.end() || it->second->path() != listed) {
        return absl::NotFoundError(absl::StrCat((root / kIndexFile).string(), " maps tensor '",
                                                name, "' to ", f, ", but ", listed,
                                                " does not contain it"));
      }
    }
  }
  return ckpt;
}

bool Checkpoint::has(std::string_view name) const {
  return by_name_.find(name) != by_name_.end();
}

StatusOr<Tensor> Checkpoint::get(std::string_view name) const {
  const auto it = by_name_.find(name);
  if (it == by_name_.end()) {
    return absl::NotFoundError(
        absl::StrCat("tensor '", std::string(name), "' is not in the checkpoint ", dir_));
  }
  return it->second->tensor(name);
}

std::string Checkpoint::file_of(std::string_view name) const {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? std::string() : it->second->path();
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(by_name_.size());
  for (const auto& [name, _] : by_name_) out.push_back(name);
  return out;
}

// ---------------------------------------------------------------------------------------------

Status CheckpointWriter::write(const std::string& dir, int num_shards) const {
  if (num_shards < 1) {
    return absl::InvalidArgumentError(absl::StrCat("num_shards must be >= 1, got ", num_shards));
  }
  const size_t count = tensors_.size();
  if (num_shards > 1 && static_cast<size_t>(num_shards) > count) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot split ", count, " tensors into ", num_shards, " non-empty shards"));
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    return absl::PermissionDeniedError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  const fs::path root(dir);

  if (num_shards == 1) {
    SafetensorsWriter w;
    for (const auto& [name, t] : tensors_) w.add(name, t);
    return w.write((root / kSingleFile).string());
  }

  // Shard i takes the tensors (in insertion order) whose starting byte falls in the i-th
  // equal slice of the total, adjusted so that no shard is skipped or left empty.
  uint64_t total = 0;
  for (const auto& [_, t] : tensors_) total += t.nbytes();
  const uint64_t n = static_cast<uint64_t>(num_shards);
  std::vector<SafetensorsWriter> shards(n);
  Json weight_map = Json::object();
  uint64_t before = 0;
  uint64_t prev = 0;
  for (size_t i = 0; i < count; ++i) {
    const auto& [name, t] = tensors_[i];
    const uint64_t ideal =
        total == 0 ? 0 : static_cast<uint64_t>(static_cast<long double>(before) * n / total);
    const uint64_t lo = std::max<uint64_t>(prev, n > count - i ? n - (count - i) : 0);
    const uint64_t hi = i == 0 ? 0 : std::min<uint64_t>(prev + 1, n - 1);
    const uint64_t s = std::clamp(ideal, lo, hi);
    if (weight_map.contains(name)) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' added twice"));
    }
    shards[s].add(name, t);
    weight_map[name] = shard_name(static_cast<int>(s + 1), num_shards);
    before += t.nbytes();
    prev = s;
  }
  for (uint64_t s = 0; s < n; ++s) {
    MS_RETURN_IF_ERROR(
        shards[s].write((root / shard_name(static_cast<int>(s + 1), num_shards)).string()));
  }
  Json index;
  index["metadata"] = {{"total_size", total}};
  index["weight_map"] = std::move(weight_map);
  const fs::path index_path = root / kIndexFile;
  std::ofstream out(index_path, std::ios::binary | std::ios::trunc);
  out << index.dump(2) << "\n";
  out.close();
  if (!out) return absl::DataLossError(absl::StrCat("writing ", index_path.string(), " failed"));
  return absl::OkStatus();
}

}  // namespace moeserve
