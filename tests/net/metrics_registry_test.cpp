#include "net/metrics_registry.h"

#include <gtest/gtest.h>

namespace moeserve::net {
namespace {

TEST(PrometheusNumber, MatchesPrometheusClient) {
  EXPECT_EQ(prometheus_number(1.0), "1.0");
  EXPECT_EQ(prometheus_number(0.001), "0.001");
  EXPECT_EQ(prometheus_number(2560.0), "2560.0");
  EXPECT_EQ(prometheus_number(1000000.0), "1e+06");
  EXPECT_EQ(prometheus_number(12345678.0), "1.2345678e+07");
  EXPECT_EQ(prometheus_number(1.0 / 0.0), "+Inf");
  EXPECT_EQ(prometheus_number(0.0), "0.0");
  EXPECT_EQ(prometheus_number(42.0), "42.0");
}

TEST(MetricsRegistry, CounterGaugeText) {
  MetricsRegistry r;
  r.add_counter("vllm:prompt_tokens", "Number of prefill tokens processed.");
  r.add_gauge("vllm:num_requests_running", "Number of requests in model execution batches.");
  const Labels l = {{"model_name", "m"}, {"engine", "0"}};
  r.counter_add("vllm:prompt_tokens", l, 5);
  r.counter_add("vllm:prompt_tokens", l, 2);
  r.counter_add("vllm:prompt_tokens", l, -3);  // ignored: counters never go down
  r.gauge_set("vllm:num_requests_running", l, 3);
  const std::string text = r.render();
  EXPECT_EQ(text,
            "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.\n"
            "# TYPE vllm:prompt_tokens_total counter\n"
            "vllm:prompt_tokens_total{model_name=\"m\",engine=\"0\"} 7.0\n"
            "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
            "# TYPE vllm:num_requests_running gauge\n"
            "vllm:num_requests_running{model_name=\"m\",engine=\"0\"} 3.0\n");
  r.counter_set("vllm:prompt_tokens", l, 4);  // lower total: ignored
  EXPECT_EQ(r.value("vllm:prompt_tokens", l), 7.0);
  r.counter_set("vllm:prompt_tokens", l, 10);
  EXPECT_EQ(r.value("vllm:prompt_tokens", l), 10.0);
}

TEST(MetricsRegistry, HistogramBucketsAreCumulative) {
  MetricsRegistry r;
  r.add_histogram("h", "help", {0.1, 1.0, 10.0});
  const Labels l = {{"a", "x\"y\\z\n"}};
  r.histogram_observe("h", l, 0.05);
  r.histogram_observe("h", l, 0.1);  // le is inclusive
  r.histogram_observe("h", l, 5.0);
  r.histogram_observe("h", l, 100.0);
  const std::string text = r.render();
  const std::string lv = "a=\"x\\\"y\\\\z\\n\"";
  EXPECT_NE(text.find("# TYPE h histogram\n"), std::string::npos);
  EXPECT_NE(text.find("h_bucket{" + lv + ",le=\"0.1\"} 2.0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("h_bucket{" + lv + ",le=\"1.0\"} 2.0\n"), std::string::npos);
  EXPECT_NE(text.find("h_bucket{" + lv + ",le=\"10.0\"} 3.0\n"), std::string::npos);
  EXPECT_NE(text.find("h_bucket{" + lv + ",le=\"+Inf\"} 4.0\n"), std::string::npos);
  EXPECT_NE(text.find("h_count{" + lv + "} 4.0\n"), std::string::npos);
  EXPECT_NE(text.find("h_sum{" + lv + "} 105.15\n"), std::string::npos);
  EXPECT_EQ(r.value("h", l), 4.0);
}

TEST(MetricsRegistry, SeriesPerLabelSet) {
  MetricsRegistry r;
  r.add_counter("vllm:request_success", "ok");
  r.counter_add("vllm:request_success", {{"finished_reason", "stop"}}, 1);
  r.counter_add("vllm:request_success", {{"finished_reason", "length"}}, 2);
  r.counter_add("vllm:request_success", {{"finished_reason", "stop"}}, 1);
  EXPECT_EQ(r.value("vllm:request_success", {{"finished_reason", "stop"}}), 2.0);
  EXPECT_EQ(r.value("vllm:request_success", {{"finished_reason", "length"}}), 2.0);
  EXPECT_EQ(r.value("vllm:request_success", {{"finished_reason", "abort"}}), 0.0);
}

}  // namespace
}  // namespace moeserve::net
