#include "serve_dataset.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <random>
#include <sstream>

namespace moeserve::bench {
namespace {

nlohmann::json random_ids(std::mt19937_64& rng, int64_t n, int64_t low, int64_t high) {
  std::uniform_int_distribution<int64_t> dist(low, high - 1);
  nlohmann::json ids = nlohmann::json::array();
  for (int64_t i = 0; i < n; ++i) ids.push_back(dist(rng));
  return ids;
}

Status check_token_range(int64_t low, int64_t high) {
  if (low < 0 || high <= low) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--random-token-low (", low, ") must be >= 0 and below --random-token-high (", high, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

StatusOr<std::vector<SampleRequest>> make_random_dataset(const RandomDatasetOptions& o) {
  MS_RETURN_IF_ERROR(check_token_range(o.token_low, o.token_high));
  if (o.range_ratio < 0.0 || o.range_ratio >= 1.0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--random-range-ratio (", o.range_ratio, ") must be in [0, 1)"));
  }
  if (o.num_prompts < 0 || o.input_len < 0 || o.output_len < 1 || o.prefix_len < 0) {
    return absl::InvalidArgumentError(
        "random dataset: --num-prompts, --random-input-len, --random-prefix-len must be >= 0 "
        "and --random-output-len >= 1");
  }
  std::mt19937_64 rng(o.seed);
  auto bounds = [&](int64_t len) {
    int64_t lo = static_cast<int64_t>(std::floor(static_cast<double>(len) * (1.0 - o.range_ratio)));
    int64_t hi = static_cast<int64_t>(std::floor(static_cast<double>(len) * (1.0 + o.range_ratio)));
    return std::pair<int64_t, int64_t>(lo, std::max(lo, hi));
  };
  auto [in_lo, in_hi] = bounds(o.input_len);
  auto [out_lo, out_hi] = bounds(o.output_len);
  out_lo = std::max<int64_t>(out_lo, 1);
  out_hi = std::max(out_hi, out_lo);
  std::uniform_int_distribution<int64_t> in_dist(in_lo, in_hi);
  std::uniform_int_distribution<int64_t> out_dist(out_lo, out_hi);
  nlohmann::json prefix = random_ids(rng, o.prefix_len, o.token_low, o.token_high);
  std::vector<SampleRequest> out;
  out.reserve(static_cast<size_t>(o.num_prompts));
  for (int64_t i = 0; i < o.num_prompts; ++i) {
    int64_t in_len = in_dist(rng);
    if (in_len + o.prefix_len == 0) in_len = 1;  // an empty prompt is not a request
    SampleRequest r;
    r.prompt = prefix;
    for (auto& id : random_ids(rng, in_len, o.token_low, o.token_high)) r.prompt.push_back(id);
    r.prompt_len = o.prefix_len + in_len;
    r.expected_output_len = out_dist(rng);
    out.push_back(std::move(r));
  }
  return out;
}

StatusOr<std::vector<SampleRequest>> make_prefix_repetition_dataset(
    const PrefixRepetitionOptions& o) {
  MS_RETURN_IF_ERROR(check_token_range(o.token_low, o.token_high));
  if (o.num_prefixes < 1 || o.prefix_len < 0 || o.suffix_len < 0 || o.output_len < 1 ||
      o.num_prompts < 0 || o.prefix_len + o.suffix_len < 1) {
    return absl::InvalidArgumentError(
        "prefix-repetition dataset: needs --prefix-repetition-num-prefixes >= 1, "
        "--prefix-repetition-output-len >= 1 and a non-empty prefix + suffix");
  }
  std::mt19937_64 rng(o.seed);
  std::vector<SampleRequest> out;
  out.reserve(static_cast<size_t>(o.num_prompts));
  int64_t per_prefix = o.num_prompts / o.num_prefixes;
  int64_t extra = o.num_prompts % o.num_prefixes;
  for (int64_t p = 0; p < o.num_prefixes; ++p) {
    nlohmann::json prefix = random_ids(rng, o.prefix_len, o.token_low, o.token_high);
    int64_t count = per_prefix + (p < extra ? 1 : 0);
    for (int64_t i = 0; i < count; ++i) {
      SampleRequest r;
      r.prompt = prefix;
      for (auto& id : random_ids(rng, o.suffix_len, o.token_low, o.token_high))
        r.prompt.push_back(id);
      r.prompt_len = o.prefix_len + o.suffix_len;
      r.expected_output_len = o.output_len;
      out.push_back(std::move(r));
    }
  }
  std::shuffle(out.begin(), out.end(), rng);
  return out;
}

StatusOr<std::vector<SampleRequest>> load_custom_dataset(const std::string& path,
                                                         int64_t num_prompts,
                                                         int64_t default_output_len) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("--dataset-path ", path, ": cannot open"));
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  std::vector<nlohmann::json> entries;
  nlohmann::json whole = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!whole.is_discarded() && whole.is_array()) {
    for (auto& e : whole) entries.push_back(e);
  } else {
    std::istringstream lines(text);
    std::string line;
    int line_no = 0;
    while (std::getline(lines, line)) {
      ++line_no;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      nlohmann::json e = nlohmann::json::parse(line, nullptr, false);
      if (e.is_discarded()) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ":", line_no, ": not valid JSON (expected a JSON array or JSONL)"));
      }
      entries.push_back(std::move(e));
    }
  }
  std::vector<SampleRequest> out;
  for (size_t i = 0; i < entries.size(); ++i) {
    if (num_prompts > 0 && static_cast<int64_t>(out.size()) >= num_prompts) break;
    const nlohmann::json& e = entries[i];
    SampleRequest r;
    r.prompt_len = -1;
    r.expected_output_len = default_output_len;
    if (e.is_string()) {
      r.prompt = e;
    } else if (e.is_object() && e.contains("prompt") &&
               (e["prompt"].is_string() || e["prompt"].is_array())) {
      r.prompt = e["prompt"];
      if (r.prompt.is_array()) r.prompt_len = static_cast<int64_t>(r.prompt.size());
      for (const char* key : {"output_tokens", "max_tokens"}) {
        if (e.contains(key) && e[key].is_number_integer() && e[key].get<int64_t>() > 0) {
          r.expected_output_len = e[key].get<int64_t>();
        }
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": entry ", i, " is neither a string nor an object with a \"prompt\""));
    }
    out.push_back(std::move(r));
  }
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": no prompts"));
  return out;
}

StatusOr<std::vector<double>> arrival_times(int64_t n, double request_rate, double burstiness,
                                            uint64_t seed) {
  if (n < 0) return absl::InvalidArgumentError("arrival_times: negative count");
  std::vector<double> t(static_cast<size_t>(n), 0.0);
  if (!(request_rate > 0.0) || std::isinf(request_rate)) return t;
  if (!(burstiness > 0.0) || std::isinf(burstiness)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--burstiness (", burstiness, ") must be a positive number"));
  }
  std::mt19937_64 rng(seed);
  std::gamma_distribution<double> gap(burstiness, 1.0 / (request_rate * burstiness));
  double now = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    t[static_cast<size_t>(i)] = now;
    now += gap(rng);
  }
  return t;
}

}  // namespace moeserve::bench
