#include "bench_serve.h"

#include <chrono>
#include <cmath>
#include <ctime>
#include <fstream>
#include <iostream>
#include <limits>
#include <sstream>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "serve_client.h"
#include "serve_dataset.h"
#include "serve_metrics.h"

namespace moeserve::bench {
namespace {

struct Args {
  std::string base_url;
  std::string host = "127.0.0.1";
  int port = 8000;
  std::string endpoint = "/v1/completions";
  std::string model;
  std::string dataset_name = "random";
  std::string dataset_path;
  int64_t num_prompts = 1000;
  int64_t random_input_len = 1024;
  int64_t random_output_len = 128;
  double random_range_ratio = 0.0;
  int64_t random_prefix_len = 0;
  int64_t random_token_low = 10;
  int64_t random_token_high = 1000;
  int64_t prefix_len = 256;
  int64_t suffix_len = 256;
  int64_t num_prefixes = 10;
  int64_t prefix_output_len = 128;
  int64_t custom_output_len = 256;
  std::string request_rate = "inf";
  double burstiness = 1.0;
  int64_t max_concurrency = 0;
  uint64_t seed = 0;
  bool ignore_eos = false;
  std::string percentile_metrics = "ttft,tpot,itl";
  std::string metric_percentiles = "99";
  std::vector<std::string> goodput;
  bool save_result = false;
  std::string result_dir;
  std::string result_filename;
  bool disable_tqdm = false;
};

// Splits "http://host:port" into host and port.
Status parse_base_url(const std::string& url, std::string* host, std::string* port) {
  std::string rest = url;
  if (rest.rfind("http://", 0) == 0) {
    rest = rest.substr(7);
  } else if (rest.find("://") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--base-url ", url, ": only http:// is supported"));
  }
  size_t slash = rest.find('/');
  if (slash != std::string::npos) rest = rest.substr(0, slash);
  size_t colon = rest.rfind(':');
  if (colon == std::string::npos) {
    *host = rest;
    *port = "80";
  } else {
    *host = rest.substr(0, colon);
    *port = rest.substr(colon + 1);
  }
  if (host->empty() || port->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--base-url ", url, ": expected http://HOST:PORT"));
  }
  return absl::OkStatus();
}

StatusOr<std::vector<SampleRequest>> make_dataset(const Args& a) {
  if (a.dataset_name == "random") {
    RandomDatasetOptions o;
    o.num_prompts = a.num_prompts;
    o.input_len = a.random_input_len;
    o.output_len = a.random_output_len;
    o.range_ratio = a.random_range_ratio;
    o.prefix_len = a.random_prefix_len;
    o.token_low = a.random_token_low;
    o.token_high = a.random_token_high;
    o.seed = a.seed;
    return make_random_dataset(o);
  }
  if (a.dataset_name == "prefix-repetition" || a.dataset_name == "prefix_repetition") {
    PrefixRepetitionOptions o;
    o.num_prompts = a.num_prompts;
    o.prefix_len = a.prefix_len;
    o.suffix_len = a.suffix_len;
    o.num_prefixes = a.num_prefixes;
    o.output_len = a.prefix_output_len;
    o.token_low = a.random_token_low;
    o.token_high = a.random_token_high;
    o.seed = a.seed;
    return make_prefix_repetition_dataset(o);
  }
  if (a.dataset_name == "custom") {
    if (a.dataset_path.empty())
      return absl::InvalidArgumentError("--dataset-name custom needs --dataset-path");
    return load_custom_dataset(a.dataset_path, a.num_prompts, a.custom_output_len);
  }
  return absl::InvalidArgumentError(absl::StrCat("--dataset-name ", a.dataset_name,
                                                 ": expected random, prefix-repetition or custom"));
}

std::string rate_string(double rate) {
  if (std::isinf(rate)) return "inf";
  std::ostringstream ss;
  ss << rate;
  return ss.str();
}

int run(const Args& a) {
  ClientConfig cfg;
  if (!a.base_url.empty()) {
    if (Status s = parse_base_url(a.base_url, &cfg.host, &cfg.port); !s.ok()) {
      std::cerr << "error: " << s.message() << "\n";
      return 2;
    }
  } else {
    cfg.host = a.host;
    cfg.port = std::to_string(a.port);
  }
  cfg.endpoint = a.endpoint;
  cfg.ignore_eos = a.ignore_eos;
  cfg.progress = !a.disable_tqdm;
  if (a.max_concurrency > 0) cfg.max_concurrency = a.max_concurrency;

  double rate = std::numeric_limits<double>::infinity();
  if (a.request_rate != "inf") {
    if (!absl::SimpleAtod(a.request_rate, &rate) || !(rate > 0)) {
      std::cerr << "error: --request-rate " << a.request_rate
                << ": expected a positive number or inf\n";
      return 2;
    }
  }
  std::vector<std::string> pmetrics = absl::StrSplit(a.percentile_metrics, ',', absl::SkipEmpty());
  for (const std::string& m : pmetrics) {
    if (m != "ttft" && m != "tpot" && m != "itl" && m != "e2el") {
      std::cerr << "error: --percentile-metrics: unknown metric '" << m
                << "' (allowed: ttft, tpot, itl, e2el)\n";
      return 2;
    }
  }
  std::vector<double> percentiles;
  for (const std::string& p :
       std::vector<std::string>(absl::StrSplit(a.metric_percentiles, ',', absl::SkipEmpty()))) {
    double v = 0;
    if (!absl::SimpleAtod(p, &v) || v < 0 || v > 100) {
      std::cerr << "error: --metric-percentiles: '" << p << "' is not a number in [0, 100]\n";
      return 2;
    }
    percentiles.push_back(v);
  }
  StatusOr<std::map<std::string, double>> slo = parse_goodput(a.goodput);
  if (!slo.ok()) {
    std::cerr << "error: " << slo.status().message() << "\n";
    return 2;
  }

  cfg.model = a.model;
  if (cfg.model.empty()) {
    StatusOr<std::string> m = fetch_first_model(cfg.host, cfg.port);
    if (!m.ok()) {
      std::cerr << "error: " << m.status().message() << "\n";
      return 1;
    }
    cfg.model = *m;
  }
  StatusOr<std::vector<SampleRequest>> reqs = make_dataset(a);
  if (!reqs.ok()) {
    std::cerr << "error: " << reqs.status().message() << "\n";
    return 2;
  }
  if (is_chat_endpoint(cfg.endpoint)) {
    for (const SampleRequest& r : *reqs) {
      if (!r.prompt.is_string()) {
        std::cerr << "error: " << cfg.endpoint
                  << " needs text prompts; token-id prompts (random and prefix-repetition "
                     "datasets) work with /v1/completions only. Use --dataset-name custom.\n";
        return 2;
      }
    }
  }
  StatusOr<std::vector<double>> arrivals =
      arrival_times(static_cast<int64_t>(reqs->size()), rate, a.burstiness, a.seed);
  if (!arrivals.ok()) {
    std::cerr << "error: " << arrivals.status().message() << "\n";
    return 2;
  }
  if (!reqs->empty()) {
    // As vllm bench serve: one request first, untimed, so a wrong argument fails at once and
    // the timed run does not include the server's cold start (weights paged in, buffers).
    std::cerr << "Starting initial single prompt test run...\n";
    ClientConfig probe = cfg;
    probe.progress = false;
    probe.max_concurrency.reset();
    StatusOr<RunResult> first = run_requests(probe, {reqs->front()}, {0.0});
    if (!first.ok() || first->outputs.empty() || !first->outputs.front().success) {
      const std::string why = !first.ok()              ? std::string(first.status().message())
                              : first->outputs.empty() ? "no output"
                                                       : first->outputs.front().error;
      std::cerr << "error: Initial test run failed - Please make sure benchmark arguments are "
                   "correctly specified. Error: "
                << why << "\n";
      return 1;
    }
    std::cerr << "Initial test run completed. Starting main benchmark run...\n";
  }
  std::cerr << "Starting benchmark: " << reqs->size() << " requests to http://" << cfg.host << ":"
            << cfg.port << cfg.endpoint << " (model " << cfg.model << ", request rate "
            << rate_string(rate) << ")\n";
  StatusOr<RunResult> res = run_requests(cfg, *reqs, *arrivals);
  if (!res.ok()) {
    std::cerr << "error: " << res.status().message() << "\n";
    return 1;
  }
  BenchmarkMetrics m = compute_metrics(res->outputs, res->duration_s, percentiles, *slo);
  SummaryOptions so;
  so.max_concurrency = cfg.max_concurrency;
  so.request_rate = rate;
  so.goodput = !slo->empty();
  so.percentile_metrics = pmetrics;
  std::cout << format_summary(m, so) << std::flush;

  if (a.save_result) {
    nlohmann::ordered_json j;
    char date[32];
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    localtime_r(&now, &tm);
    std::strftime(date, sizeof(date), "%Y%m%d-%H%M%S", &tm);
    j["date"] = date;
    j["endpoint_type"] = is_chat_endpoint(cfg.endpoint) ? "openai-chat" : "openai";
    j["backend"] = j["endpoint_type"];
    j["model_id"] = cfg.model;
    j["num_prompts"] = reqs->size();
    j["request_rate"] =
        std::isinf(rate) ? nlohmann::ordered_json("inf") : nlohmann::ordered_json(rate);
    j["burstiness"] = a.burstiness;
    j["max_concurrency"] = cfg.max_concurrency ? nlohmann::ordered_json(*cfg.max_concurrency)
                                               : nlohmann::ordered_json(nullptr);
    nlohmann::ordered_json metrics_json = metrics_to_json(m, pmetrics);
    for (auto& [k, v] : metrics_json.items()) j[k] = v;
    std::string name = a.result_filename;
    if (name.empty()) {
      std::string base_model = cfg.model.substr(cfg.model.rfind('/') + 1);
      name = absl::StrCat(
          j["backend"].get<std::string>(), "-", rate_string(rate), "qps",
          cfg.max_concurrency ? absl::StrCat("-concurrency", *cfg.max_concurrency) : "", "-",
          base_model, "-", date, ".json");
    }
    std::string path = a.result_dir.empty() ? name : a.result_dir + "/" + name;
    std::ofstream f(path);
    f << j.dump(4) << "\n";
    if (!f) {
      std::cerr << "error: cannot write " << path << "\n";
      return 1;
    }
    std::cerr << "Saved result to " << path << "\n";
  }
  return m.completed > 0 ? 0 : 1;
}

}  // namespace

int bench_serve_main(int argc, char** argv) {
  Args a;
  CLI::App app{"Benchmark an OpenAI-compatible server (vllm bench serve metrics)", "bench serve"};
  app.add_option("--base-url", a.base_url,
                 "Server URL, e.g. http://127.0.0.1:8000 (overrides --host/--port)");
  app.add_option("--host", a.host, "Server host")->capture_default_str();
  app.add_option("--port", a.port, "Server port")->capture_default_str();
  app.add_option("--endpoint", a.endpoint, "API path: /v1/completions or /v1/chat/completions")
      ->capture_default_str();
  app.add_option("--model", a.model, "Model name (default: first id of GET /v1/models)");
  app.add_option("--dataset-name", a.dataset_name, "random | prefix-repetition | custom")
      ->capture_default_str();
  app.add_option("--dataset-path", a.dataset_path, "JSON array or JSONL of prompts (custom)");
  app.add_option("--num-prompts", a.num_prompts, "Number of requests")->capture_default_str();
  app.add_option("--random-input-len", a.random_input_len)->capture_default_str();
  app.add_option("--random-output-len", a.random_output_len)->capture_default_str();
  app.add_option("--random-range-ratio", a.random_range_ratio,
                 "Lengths uniform in [L(1-r), L(1+r)]")
      ->capture_default_str();
  app.add_option("--random-prefix-len", a.random_prefix_len, "Shared prefix tokens")
      ->capture_default_str();
  app.add_option("--random-token-low", a.random_token_low, "Lowest random token id")
      ->capture_default_str();
  app.add_option("--random-token-high", a.random_token_high, "Random token ids are below this")
      ->capture_default_str();
  app.add_option("--prefix-repetition-prefix-len", a.prefix_len)->capture_default_str();
  app.add_option("--prefix-repetition-suffix-len", a.suffix_len)->capture_default_str();
  app.add_option("--prefix-repetition-num-prefixes", a.num_prefixes)->capture_default_str();
  app.add_option("--prefix-repetition-output-len", a.prefix_output_len)->capture_default_str();
  app.add_option("--custom-output-len", a.custom_output_len, "max_tokens for custom prompts")
      ->capture_default_str();
  app.add_option("--request-rate", a.request_rate, "Requests/s (Poisson or gamma arrivals) or inf")
      ->capture_default_str();
  app.add_option("--burstiness", a.burstiness, "Gamma shape of inter-arrival gaps (1 = Poisson)")
      ->capture_default_str();
  app.add_option("--max-concurrency", a.max_concurrency, "Cap on requests in flight");
  app.add_option("--seed", a.seed)->capture_default_str();
  app.add_flag("--ignore-eos", a.ignore_eos,
               "Send ignore_eos so every request generates its full length");
  app.add_option("--percentile-metrics", a.percentile_metrics, "Comma list of ttft,tpot,itl,e2el")
      ->capture_default_str();
  app.add_option("--metric-percentiles", a.metric_percentiles, "Comma list, e.g. 50,90,99")
      ->capture_default_str();
  app.add_option("--goodput", a.goodput, "SLOs as KEY:MS (ttft, tpot, e2el)");
  app.add_flag("--save-result", a.save_result, "Write the result JSON");
  app.add_option("--result-dir", a.result_dir);
  app.add_option("--result-filename", a.result_filename);
  app.add_flag("--disable-tqdm", a.disable_tqdm, "No progress bar");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return run(a);
}

}  // namespace moeserve::bench
