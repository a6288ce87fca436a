#include "serve_metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "absl/strings/numbers.h"

namespace moeserve::bench {

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  double rank = std::clamp(p, 0.0, 100.0) / 100.0 * static_cast<double>(v.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(rank));
  size_t hi = std::min(lo + 1, v.size() - 1);
  double frac = rank - static_cast<double>(lo);
  return v[lo] + (v[hi] - v[lo]) * frac;
}

double mean(const std::vector<double>& v) {
  if (v.empty()) return 0.0;
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

double median(const std::vector<double>& v) {
  return percentile(v, 50.0);
}

double stddev(const std::vector<double>& v) {
  if (v.empty()) return 0.0;
  double m = mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size()));
}

StatusOr<std::map<std::string, double>> parse_goodput(const std::vector<std::string>& specs) {
  std::map<std::string, double> out;
  for (const std::string& s : specs) {
    size_t colon = s.find(':');
    double v = 0;
    std::string key = s.substr(0, colon);
    if (colon == std::string::npos || !absl::SimpleAtod(s.substr(colon + 1), &v)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--goodput '", s, "': expected KEY:VALUE such as ttft:500"));
    }
    if (key != "ttft" && key != "tpot" && key != "e2el") {
      return absl::InvalidArgumentError(
          absl::StrCat("--goodput '", s, "': metric must be ttft, tpot or e2el"));
    }
    if (v < 0) return absl::InvalidArgumentError(absl::StrCat("--goodput '", s, "': negative SLO"));
    out[key] = v;
  }
  return out;
}

namespace {

MetricStats stats_of(const std::vector<double>& seconds, const std::vector<double>& percentiles) {
  MetricStats st;
  st.mean_ms = mean(seconds) * 1000.0;
  st.median_ms = median(seconds) * 1000.0;
  st.std_ms = stddev(seconds) * 1000.0;
  for (double p : percentiles) st.percentiles_ms.emplace_back(p, percentile(seconds, p) * 1000.0);
  return st;
}

std::string percentile_word(double p) {
  if (std::floor(p) == p) return std::to_string(static_cast<int64_t>(p));
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", p);
  return buf;
}

}  // namespace

BenchmarkMetrics compute_metrics(const std::vector<RequestOutput>& outputs, double duration_s,
                                 const std::vector<double>& percentiles,
                                 const std::map<std::string, double>& goodput_slo_ms) {
  BenchmarkMetrics m;
  m.duration_s = duration_s;
  std::vector<double> tpots, all_tpots, e2els;
  for (const RequestOutput& o : outputs) {
    m.input_lens.push_back(o.prompt_len);
    m.errors.push_back(o.error);
    m.itls.push_back(o.itl);
    m.ttfts.push_back(o.ttft);
    if (!o.success) {
      m.output_lens.push_back(0);
      ++m.failed;
      continue;
    }
    int64_t out_len = o.output_tokens;
    m.output_lens.push_back(out_len);
    m.total_input += o.prompt_len;
    m.total_output += out_len;
    double tpot = 0;
    if (out_len > 1) {
      tpot = (o.latency - o.ttft) / static_cast<double>(out_len - 1);
      tpots.push_back(tpot);
    }
    all_tpots.push_back(tpot);
    m.itls_flat.insert(m.itls_flat.end(), o.itl.begin(), o.itl.end());
    e2els.push_back(o.latency);
    ++m.completed;
  }
  std::vector<double> ok_ttfts;
  for (const RequestOutput& o : outputs) {
    if (o.success) ok_ttfts.push_back(o.ttft);
  }
  if (!goodput_slo_ms.empty()) {
    int64_t good = 0;
    for (size_t i = 0; i < ok_ttfts.size(); ++i) {
      bool is_good = true;
      for (const auto& [key, slo_ms] : goodput_slo_ms) {
        double v = key == "ttft" ? ok_ttfts[i] : key == "tpot" ? all_tpots[i] : e2els[i];
        if (v > slo_ms / 1000.0) is_good = false;
      }
      if (is_good) ++good;
    }
    m.request_goodput = duration_s > 0 ? static_cast<double>(good) / duration_s : 0;
  }
  if (duration_s > 0) {
    m.request_throughput = static_cast<double>(m.completed) / duration_s;
    m.output_throughput = static_cast<double>(m.total_output) / duration_s;
    m.total_token_throughput = static_cast<double>(m.total_input + m.total_output) / duration_s;
  }
  m.stats["ttft"] = stats_of(ok_ttfts, percentiles);
  m.stats["tpot"] = stats_of(tpots, percentiles);
  m.stats["itl"] = stats_of(m.itls_flat, percentiles);
  m.stats["e2el"] = stats_of(e2els, percentiles);

  // Peak output tokens per 1-second bucket and peak concurrency, over successful requests.
  double t0 = INFINITY;
  double t1 = -INFINITY;
  for (const RequestOutput& o : outputs) {
    if (!o.success) continue;
    t0 = std::min(t0, o.start_time);
    t1 = std::max(t1, o.start_time + o.latency);
  }
  if (m.completed > 0) {
    size_t buckets = static_cast<size_t>(std::ceil(t1 - t0)) + 1;
    std::vector<double> tokens(buckets, 0.0);
    std::vector<int64_t> concurrent(buckets, 0);
    for (const RequestOutput& o : outputs) {
      if (!o.success) continue;
      double t = o.start_time + o.ttft;
      auto add = [&](double at) {
        auto b = static_cast<int64_t>(at - t0);
        if (b >= 0 && b < static_cast<int64_t>(buckets)) tokens[static_cast<size_t>(b)] += 1;
      };
      add(t);
      for (double gap : o.itl) {
        t += gap;
        add(t);
      }
      auto first = static_cast<size_t>(o.start_time - t0);
      auto last = std::min(static_cast<size_t>(o.start_time + o.latency - t0), buckets - 1);
      for (size_t b = first; b <= last; ++b) ++concurrent[b];
    }
    m.max_output_tokens_per_s = *std::max_element(tokens.begin(), tokens.end());
    m.max_concurrent_requests = *std::max_element(concurrent.begin(), concurrent.end());
  }
  return m;
}

nlohmann::ordered_json metrics_to_json(const BenchmarkMetrics& m,
                                       const std::vector<std::string>& percentile_metrics) {
  nlohmann::ordered_json j;
  j["duration"] = m.duration_s;
  j["completed"] = m.completed;
  j["failed"] = m.failed;
  j["total_input_tokens"] = m.total_input;
  j["total_output_tokens"] = m.total_output;
  j["request_throughput"] = m.request_throughput;
  j["request_goodput"] = m.request_goodput;
  j["output_throughput"] = m.output_throughput;
  j["total_token_throughput"] = m.total_token_throughput;
  j["max_output_tokens_per_s"] = m.max_output_tokens_per_s;
  j["max_concurrent_requests"] = m.max_concurrent_requests;
  j["input_lens"] = m.input_lens;
  j["output_lens"] = m.output_lens;
  j["ttfts"] = m.ttfts;
  j["itls"] = m.itls;
  j["errors"] = m.errors;
  // Mean/median/std of every metric; percentiles of the selected ones (as vLLM does).
  for (const char* key : {"ttft", "tpot", "itl", "e2el"}) {
    const MetricStats& st = m.stats.at(key);
    j[absl::StrCat("mean_", key, "_ms")] = st.mean_ms;
    j[absl::StrCat("median_", key, "_ms")] = st.median_ms;
    j[absl::StrCat("std_", key, "_ms")] = st.std_ms;
    bool selected = std::find(percentile_metrics.begin(), percentile_metrics.end(), key) !=
                    percentile_metrics.end();
    if (!selected) continue;
    for (const auto& [p, v] : st.percentiles_ms) {
      j[absl::StrCat("p", percentile_word(p), "_", key, "_ms")] = v;
    }
  }
  return j;
}

namespace {

void line(std::string& out, const std::string& label, const std::string& value) {
  char buf[256];
  std::snprintf(buf, sizeof(buf), "%-40s %-10s\n", label.c_str(), value.c_str());
  out += buf;
}
std::string f2(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.2f", v);
  return buf;
}
std::string centered(const std::string& title, char fill) {
  size_t width = 50;
  if (title.size() >= width) return title + "\n";
  size_t left = (width - title.size()) / 2;
  return std::string(left, fill) + title + std::string(width - title.size() - left, fill) + "\n";
}

}  // namespace

std::string format_summary(const BenchmarkMetrics& m, const SummaryOptions& o) {
  std::string out = centered(" Serving Benchmark Result ", '=');
  line(out, "Successful requests:", std::to_string(m.completed));
  line(out, "Failed requests:", std::to_string(m.failed));
  if (o.max_concurrency)
    line(out, "Maximum request concurrency:", std::to_string(*o.max_concurrency));
  if (o.request_rate > 0 && !std::isinf(o.request_rate)) {
    line(out, "Request rate configured (RPS):", f2(o.request_rate));
  }
  line(out, "Benchmark duration (s):", f2(m.duration_s));
  line(out, "Total input tokens:", std::to_string(m.total_input));
  line(out, "Total generated tokens:", std::to_string(m.total_output));
  line(out, "Request throughput (req/s):", f2(m.request_throughput));
  if (o.goodput) line(out, "Request goodput (req/s):", f2(m.request_goodput));
  line(out, "Output token throughput (tok/s):", f2(m.output_throughput));
  line(out, "Peak output token throughput (tok/s):", f2(m.max_output_tokens_per_s));
  line(out, "Peak concurrent requests:", f2(static_cast<double>(m.max_concurrent_requests)));
  line(out, "Total Token throughput (tok/s):", f2(m.total_token_throughput));
  struct Section {
    const char* key;
    const char* name;
    const char* header;
  };
  static constexpr Section kSections[] = {
      {"ttft", "TTFT", "Time to First Token"},
      {"tpot", "TPOT", "Time per Output Token (excl. 1st token)"},
      {"itl", "ITL", "Inter-token Latency"},
      {"e2el", "E2EL", "End-to-end Latency"},
  };
  for (const Section& s : kSections) {
    if (std::find(o.percentile_metrics.begin(), o.percentile_metrics.end(), s.key) ==
        o.percentile_metrics.end()) {
      continue;
    }
    const MetricStats& st = m.stats.at(s.key);
    out += centered(s.header, '-');
    line(out, absl::StrCat("Mean ", s.name, " (ms):"), f2(st.mean_ms));
    line(out, absl::StrCat("Median ", s.name, " (ms):"), f2(st.median_ms));
    for (const auto& [p, v] : st.percentiles_ms) {
      line(out, absl::StrCat("P", percentile_word(p), " ", s.name, " (ms):"), f2(v));
    }
  }
  out += std::string(50, '=') + "\n";
  return out;
}

}  // namespace moeserve::bench
