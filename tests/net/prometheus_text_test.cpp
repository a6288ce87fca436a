#include "net/prometheus_text.h"

#include <gtest/gtest.h>

namespace moeserve::net {
namespace {

TEST(PrometheusText, ParsesVllmMetrics) {
  const char* text =
      "# HELP vllm:num_requests_waiting Number of requests waiting.\n"
      "# TYPE vllm:num_requests_waiting gauge\n"
      "vllm:num_requests_waiting{engine=\"0\",model_name=\"m\"} 3.0\n"
      "vllm:num_requests_waiting{engine=\"1\",model_name=\"m\"} 2.0\n"
      "vllm:num_requests_running{engine=\"0\",model_name=\"m\"} 7\n"
      "vllm:gpu_cache_usage_perc{model_name=\"m\"} 0.9\n"
      "vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"m\"} 0.25 1700000000000\n"
      "vllm:cache_config_info{block_size=\"16\",cache_dtype=\"auto\",num_gpu_blocks=\"4096\","
      "enable_prefix_caching=\"True\"} 1.0\n"
      "vllm:prompt_tokens_total{model_name=\"a \\\"q\\\" b\"} 1e3\n";
  auto samples = parse_prometheus_text(text);
  ASSERT_TRUE(samples.ok()) << samples.status();
  ASSERT_EQ(samples->size(), 7u);
  EXPECT_EQ((*samples)[6].labels.at("model_name"), "a \"q\" b");
  EXPECT_DOUBLE_EQ((*samples)[6].value, 1000);
  EXPECT_EQ((*samples)[0].name, "vllm:num_requests_waiting");
  EXPECT_EQ((*samples)[0].labels.at("engine"), "0");
  EXPECT_DOUBLE_EQ((*samples)[0].value, 3);
  EXPECT_DOUBLE_EQ((*samples)[4].value, 0.25);  // the timestamp after the value is ignored

  EXPECT_FALSE(parse_prometheus_text("vllm:x{a=\"b} 1\n").ok());
  EXPECT_FALSE(parse_prometheus_text("vllm:x notanumber\n").ok());
}

TEST(PrometheusText, MergesRankFamiliesOnce) {
  const std::string rank0 =
      "# HELP vllm:num_requests_running Running.\n# TYPE vllm:num_requests_running gauge\n"
      "vllm:num_requests_running{engine=\"0\",model_name=\"m\"} 1\n"
      "# HELP vllm:e2e_request_latency_seconds E2E.\n"
      "# TYPE vllm:e2e_request_latency_seconds histogram\n"
      "vllm:e2e_request_latency_seconds_bucket{engine=\"0\",le=\"+Inf\"} 2\n"
      "vllm:e2e_request_latency_seconds_count{engine=\"0\"} 2\n"
      "# HELP process_cpu_seconds_total CPU.\n# TYPE process_cpu_seconds_total counter\n"
      "process_cpu_seconds_total 3\n";
  std::string rank1 = rank0;
  for (size_t p = rank1.find("engine=\"0\""); p != std::string::npos;
       p = rank1.find("engine=\"0\"", p)) {
    rank1.replace(p, 10, "engine=\"1\"");
  }
  const std::string merged = merge_exposition_families({rank0, rank1}, "vllm:");
  auto count = [&](const std::string& what) {
    size_t n = 0;
    for (size_t p = merged.find(what); p != std::string::npos; p = merged.find(what, p + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count("# TYPE vllm:num_requests_running gauge"), 1u) << merged;
  EXPECT_EQ(count("# TYPE vllm:e2e_request_latency_seconds histogram"), 1u) << merged;
  EXPECT_EQ(count("vllm:num_requests_running{engine="), 2u) << merged;
  EXPECT_EQ(count("vllm:e2e_request_latency_seconds_count{engine=\"1\"} 2"), 1u) << merged;
  EXPECT_EQ(count("process_cpu"), 0u) << merged;
  auto samples = parse_prometheus_text(merged);
  ASSERT_TRUE(samples.ok()) << samples.status();
  EXPECT_EQ(samples->size(), 6u);
}

TEST(PrometheusText, WritesFamiliesAndSamples) {
  std::string out;
  append_family_header(&out, "x_total", "counter", "Line one\\two\nthree.");
  append_sample(&out, "x_total", {{"endpoint", "a\"b\\c\nd"}}, 3);
  const std::string le = prometheus_number(0.5);
  append_sample(&out, "h_bucket", {{"k", "v"}}, 1, &le);
  append_sample(&out, "plain", {}, 1e6);
  EXPECT_EQ(out,
            "# HELP x_total Line one\\\\two\\nthree.\n"
            "# TYPE x_total counter\n"
            "x_total{endpoint=\"a\\\"b\\\\c\\nd\"} 3.0\n"
            "h_bucket{k=\"v\",le=\"0.5\"} 1.0\n"
            "plain 1e+06\n");
  auto back = parse_prometheus_text(out);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->size(), 3u);
  EXPECT_EQ((*back)[0].labels.at("endpoint"), "a\"b\\c\nd");
}

}  // namespace
}  // namespace moeserve::net
