#include "router/endpoint_pool.h"

#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/logging.h"
#include "yaml-cpp/yaml.h"

namespace moeserve::router {
namespace {

Status check_address(const std::string& address) {
  auto colon = address.rfind(':');
  uint32_t port = 0;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port == 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("endpoint '", address, "' must be host:port with a port in 1..65535"));
  }
  return absl::OkStatus();
}

}  // namespace

StatusOr<std::pair<std::string, std::string>> split_host_port(const std::string& address) {
  MS_RETURN_IF_ERROR(check_address(address));
  auto colon = address.rfind(':');
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return std::make_pair(host, address.substr(colon + 1));
}

StatusOr<std::vector<EndpointSpec>> parse_endpoint_list(std::string_view list) {
  std::vector<EndpointSpec> out;
  for (absl::string_view item :
       absl::StrSplit(absl::string_view(list.data(), list.size()), ',', absl::SkipWhitespace())) {
    item = absl::StripAsciiWhitespace(item);
    EndpointSpec spec;
    auto at = item.find('@');
    spec.address = std::string(item.substr(0, at));
    if (at != absl::string_view::npos) spec.labels[kRoleLabel] = std::string(item.substr(at + 1));
    MS_RETURN_IF_ERROR(check_address(spec.address));
    out.push_back(std::move(spec));
  }
  return out;
}

StatusOr<std::vector<EndpointSpec>> parse_endpoints_document(std::string_view text) {
  std::vector<EndpointSpec> out;
  try {
    YAML::Node root = YAML::Load(std::string(text));
    YAML::Node list = root;
    if (root.IsMap()) list = root["endpoints"];
    if (!list || list.IsNull()) return out;
    if (!list.IsSequence()) {
      return absl::InvalidArgumentError("endpoints file: expected a list of endpoints");
    }
    for (const auto& item : list) {
      EndpointSpec spec;
      if (item.IsScalar()) {
        spec.address = item.as<std::string>();
      } else if (item.IsMap()) {
        if (!item["address"] || !item["address"].IsScalar()) {
          return absl::InvalidArgumentError("endpoints file: every entry needs 'address'");
        }
        spec.address = item["address"].as<std::string>();
        if (item["labels"]) {
          if (!item["labels"].IsMap()) {
            return absl::InvalidArgumentError(
                absl::StrCat("endpoints file: labels of '", spec.address, "' must be a mapping"));
          }
          for (const auto& kv : item["labels"]) {
            spec.labels[kv.first.as<std::string>()] = kv.second.as<std::string>();
          }
        }
        if (item["role"]) spec.labels[kRoleLabel] = item["role"].as<std::string>();
        if (item["model"]) spec.labels[kModelLabel] = item["model"].as<std::string>();
      } else {
        return absl::InvalidArgumentError("endpoints file: entries must be strings or mappings");
      }
      MS_RETURN_IF_ERROR(check_address(spec.address));
      out.push_back(std::move(spec));
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("endpoints file: ", e.what()));
  }
  return out;
}

StatusOr<std::vector<EndpointSpec>> load_endpoints_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open endpoints file '", path, "'"));
  std::stringstream ss;
  ss << in.rdbuf();
  auto specs = parse_endpoints_document(ss.str());
  if (!specs.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", specs.status().message()));
  }
  return specs;
}

void EndpointPool::set_endpoints(const std::vector<EndpointSpec>& specs) {
  std::vector<std::string> removed;
  std::function<void(const std::string&)> cb;
  {
    absl::MutexLock lock(&mu_);
    std::map<std::string, Entry> next;
    for (const auto& spec : specs) {
      auto it = entries_.find(spec.address);
      Entry e;
      if (it != entries_.end()) e = it->second;
      e.state.address = spec.address;
      e.state.labels = spec.labels;
      next[spec.address] = std::move(e);
    }
    for (const auto& [addr, e] : entries_) {
      if (!next.count(addr)) removed.push_back(addr);
    }
    entries_ = std::move(next);
    cb = on_removed_;
  }
  for (const auto& addr : removed) {
    MS_LOG_INFO("endpoint {} removed from the pool", addr);
    if (cb) cb(addr);
  }
}

void EndpointPool::set_removal_callback(std::function<void(const std::string&)> cb) {
  absl::MutexLock lock(&mu_);
  on_removed_ = std::move(cb);
}

std::vector<EndpointState> EndpointPool::snapshot() const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<EndpointState> out;
  out.reserve(entries_.size());
  for (const auto& [addr, e] : entries_) out.push_back(e.state);
  return out;
}

std::vector<EndpointState> EndpointPool::healthy_snapshot() const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<EndpointState> out;
  for (const auto& [addr, e] : entries_) {
    if (e.state.healthy) out.push_back(e.state);
  }
  return out;
}

std::vector<std::string> EndpointPool::addresses() const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<std::string> out;
  for (const auto& [addr, e] : entries_) out.push_back(addr);
  return out;
}

bool EndpointPool::contains(const std::string& address) const {
  absl::ReaderMutexLock lock(&mu_);
  return entries_.count(address) != 0;
}

void EndpointPool::record_success(const std::string& address, const EndpointMetrics& metrics) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(address);
  if (it == entries_.end()) return;
  if (!it->second.state.healthy) MS_LOG_INFO("endpoint {} is healthy again", address);
  it->second.state.metrics = metrics;
  it->second.state.healthy = true;
  it->second.consecutive_failures = 0;
}

bool EndpointPool::record_failure(const std::string& address) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(address);
  if (it == entries_.end()) return false;
  ++it->second.consecutive_failures;
  if (it->second.state.healthy && it->second.consecutive_failures >= failure_threshold_) {
    it->second.state.healthy = false;
    MS_LOG_WARN("endpoint {} marked unhealthy after {} failures", address,
                it->second.consecutive_failures);
    return true;
  }
  return false;
}

void EndpointPool::add_active(const std::string& address, int64_t delta) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(address);
  if (it == entries_.end()) return;
  it->second.state.active_requests = std::max<int64_t>(0, it->second.state.active_requests + delta);
}

int64_t EndpointPool::active(const std::string& address) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = entries_.find(address);
  return it == entries_.end() ? 0 : it->second.state.active_requests;
}

}  // namespace moeserve::router
