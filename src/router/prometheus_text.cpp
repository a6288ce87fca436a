#include "router/prometheus_text.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace moeserve::router {
namespace {

bool is_name_char(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
         (!first && c >= '0' && c <= '9');
}

StatusOr<double> parse_value(std::string_view s) {
  if (s == "+Inf" || s == "Inf") return HUGE_VAL;
  if (s == "-Inf") return -HUGE_VAL;
  if (s == "NaN") return std::nan("");
  std::string tmp(s);
  char* end = nullptr;
  double v = std::strtod(tmp.c_str(), &end);
  if (tmp.empty() || end != tmp.c_str() + tmp.size()) {
    return absl::InvalidArgumentError(absl::StrCat("bad sample value '", tmp, "'"));
  }
  return v;
}

StatusOr<PromSample> parse_line(std::string_view line) {
  PromSample s;
  std::size_t i = 0;
  while (i < line.size() && is_name_char(line[i], i == 0)) ++i;
  if (i == 0) return absl::InvalidArgumentError("expected a metric name");
  s.name = std::string(line.substr(0, i));
  if (i < line.size() && line[i] == '{') {
    ++i;
    while (true) {
      while (i < line.size() && (line[i] == ' ' || line[i] == ',')) ++i;
      if (i < line.size() && line[i] == '}') {
        ++i;
        break;
      }
      std::size_t start = i;
      while (i < line.size() && is_name_char(line[i], i == start)) ++i;
      if (i == start || i >= line.size() || line[i] != '=') {
        return absl::InvalidArgumentError("bad label name");
      }
      std::string key(line.substr(start, i - start));
      ++i;
      if (i >= line.size() || line[i] != '"')
        return absl::InvalidArgumentError("label value must be quoted");
      ++i;
      std::string value;
      bool closed = false;
      while (i < line.size()) {
        char c = line[i++];
        if (c == '\\' && i < line.size()) {
          char e = line[i++];
          value.push_back(e == 'n' ? '\n' : e);
        } else if (c == '"') {
          closed = true;
          break;
        } else {
          value.push_back(c);
        }
      }
      if (!closed) return absl::InvalidArgumentError("unterminated label value");
      s.labels[key] = std::move(value);
    }
  }
  while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
  std::size_t vstart = i;
  while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
  MS_ASSIGN_OR_RETURN(s.value, parse_value(line.substr(vstart, i - vstart)));
  return s;  // an optional timestamp after the value is ignored
}

}  // namespace

StatusOr<std::vector<PromSample>> parse_prometheus_text(std::string_view text) {
  std::vector<PromSample> out;
  std::size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    if (line.empty() || line.front() == '#') continue;
    auto sample = parse_line(line);
    if (!sample.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("metrics line ", line_no, ": ", sample.status().message()));
    }
    out.push_back(std::move(*sample));
  }
  return out;
}

std::string merge_exposition_families(const std::vector<std::string>& texts,
                                      std::string_view name_prefix) {
  struct Family {
    std::string help;
    std::string type;
    std::string samples;
  };
  std::vector<std::string> order;
  std::map<std::string, Family> families;
  auto family = [&](const std::string& name) -> Family& {
    auto [it, inserted] = families.try_emplace(name);
    if (inserted) order.push_back(name);
    return it->second;
  };
  for (std::string_view text : texts) {
    std::string current;  // family declared by the last HELP/TYPE line
    while (!text.empty()) {
      const std::size_t nl = text.find('\n');
      std::string_view line = text.substr(0, nl);
      text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
      while (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.empty()) continue;
      if (line.front() == '#') {
        std::string_view rest = line.substr(1);
        while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
        const bool help = rest.substr(0, 5) == "HELP ";
        const bool type = rest.substr(0, 5) == "TYPE ";
        if (!help && !type) continue;
        rest.remove_prefix(5);
        const std::string name(rest.substr(0, rest.find(' ')));
        current = name;
        if (name.substr(0, name_prefix.size()) != name_prefix) continue;
        Family& f = family(name);
        std::string& slot = help ? f.help : f.type;
        if (slot.empty()) slot = std::string(line);
        continue;
      }
      const std::string name(line.substr(0, line.find_first_of("{ \t")));
      const bool in_current = !current.empty() && name.substr(0, current.size()) == current;
      const std::string& fam = in_current ? current : name;
      if (fam.substr(0, name_prefix.size()) != name_prefix) continue;
      Family& f = family(fam);
      f.samples.append(line);
      f.samples.push_back('\n');
    }
  }
  std::string out;
  for (const std::string& name : order) {
    const Family& f = families[name];
    if (!f.help.empty()) absl::StrAppend(&out, f.help, "\n");
    if (!f.type.empty()) absl::StrAppend(&out, f.type, "\n");
    out += f.samples;
  }
  return out;
}

StatusOr<EndpointMetrics> extract_engine_metrics(const std::vector<PromSample>& samples) {
  EndpointMetrics m;
  bool has_waiting = false, has_running = false, has_kv = false;
  double gpu_usage = -1;
  for (const auto& s : samples) {
    if (s.name == "vllm:num_requests_waiting") {
      m.waiting += s.value;
      has_waiting = true;
    } else if (s.name == "vllm:num_requests_running") {
      m.running += s.value;
      has_running = true;
    } else if (s.name == "vllm:kv_cache_usage_perc") {
      m.kv_usage = has_kv ? std::max(m.kv_usage, s.value) : s.value;
      has_kv = true;
    } else if (s.name == "vllm:gpu_cache_usage_perc") {
      gpu_usage = std::max(gpu_usage, s.value);
    } else if (s.name == "vllm:cache_config_info") {
      auto bs = s.labels.find("block_size");
      if (bs != s.labels.end()) m.block_size = std::strtoll(bs->second.c_str(), nullptr, 10);
      auto nb = s.labels.find("num_gpu_blocks");
      if (nb != s.labels.end() && nb->second != "None") {
        m.num_gpu_blocks = std::strtoll(nb->second.c_str(), nullptr, 10);
      }
    }
  }
  if (!has_kv && gpu_usage >= 0) m.kv_usage = gpu_usage;
  if (!has_waiting && !has_running) {
    return absl::NotFoundError(
        "metrics have neither vllm:num_requests_waiting nor vllm:num_requests_running");
  }
  m.valid = true;
  return m;
}

}  // namespace moeserve::router
