#include <cmath>
#include <random>
#include <set>

#include "gtest/gtest.h"
#include "serve_dataset.h"
#include "serve_metrics.h"
#include "sse_parser.h"

namespace moeserve::bench {
namespace {

TEST(ServeMetrics, PercentileMeanStdLikeNumpy) {
  std::vector<double> v = {4, 1, 3, 2};
  EXPECT_DOUBLE_EQ(percentile(v, 99), 3.97);  // np.percentile([1,2,3,4], 99)
  EXPECT_DOUBLE_EQ(percentile(v, 50), 2.5);
  EXPECT_DOUBLE_EQ(percentile(v, 0), 1.0);
  EXPECT_DOUBLE_EQ(percentile(v, 100), 4.0);
  EXPECT_DOUBLE_EQ(percentile({7}, 99), 7.0);
  EXPECT_DOUBLE_EQ(percentile({}, 99), 0.0);
  EXPECT_DOUBLE_EQ(median({5, 1, 3}), 3.0);
  EXPECT_DOUBLE_EQ(mean(v), 2.5);
  EXPECT_NEAR(stddev(v), std::sqrt(1.25), 1e-12);  // population std, ddof=0
  EXPECT_DOUBLE_EQ(stddev({}), 0.0);
}

std::vector<RequestOutput> sample_outputs() {
  RequestOutput a;
  a.success = true;
  a.start_time = 0.0;
  a.ttft = 0.1;
  a.latency = 1.1;
  a.itl = {0.5, 0.5};
  a.output_tokens = 3;
  a.prompt_len = 10;
  RequestOutput b;
  b.success = true;
  b.start_time = 0.5;
  b.ttft = 0.2;
  b.latency = 0.2;
  b.output_tokens = 1;
  b.prompt_len = 5;
  RequestOutput c;
  c.success = false;
  c.error = "stream: partial message";
  c.prompt_len = 7;
  return {a, b, c};
}

TEST(ServeMetrics, AggregatesLikeVllm) {
  BenchmarkMetrics m = compute_metrics(sample_outputs(), 2.0, {50, 99}, {});
  EXPECT_EQ(m.completed, 2);
  EXPECT_EQ(m.failed, 1);
  EXPECT_EQ(m.total_input, 15);
  EXPECT_EQ(m.total_output, 4);
  EXPECT_DOUBLE_EQ(m.request_throughput, 1.0);
  EXPECT_DOUBLE_EQ(m.output_throughput, 2.0);
  EXPECT_DOUBLE_EQ(m.total_token_throughput, 9.5);
  // TPOT only from the request with more than one output token: (1.1 - 0.1) / 2.
  EXPECT_NEAR(m.stats["tpot"].mean_ms, 500.0, 1e-9);
  EXPECT_NEAR(m.stats["tpot"].std_ms, 0.0, 1e-9);
  EXPECT_NEAR(m.stats["ttft"].mean_ms, 150.0, 1e-9);
  EXPECT_NEAR(m.stats["ttft"].percentiles_ms[1].second, 199.0, 1e-9);
  EXPECT_NEAR(m.stats["e2el"].median_ms, 650.0, 1e-9);
  EXPECT_NEAR(m.stats["itl"].mean_ms, 500.0, 1e-9);
  EXPECT_EQ(m.output_lens, (std::vector<int64_t>{3, 1, 0}));
  EXPECT_EQ(m.errors[2], "stream: partial message");
  // Tokens at 0.1, 0.6, 1.1 (A) and 0.7 (B): 3 in the first second; both active in it.
  EXPECT_DOUBLE_EQ(m.max_output_tokens_per_s, 3.0);
  EXPECT_EQ(m.max_concurrent_requests, 2);

  nlohmann::ordered_json j = metrics_to_json(m, {"ttft", "tpot", "itl"});
  for (const char* key : {"duration",
                          "completed",
                          "failed",
                          "total_input_tokens",
                          "total_output_tokens",
                          "request_throughput",
                          "request_goodput",
                          "output_throughput",
                          "total_token_throughput",
                          "mean_ttft_ms",
                          "median_ttft_ms",
                          "std_ttft_ms",
                          "p99_ttft_ms",
                          "p50_itl_ms",
                          "mean_e2el_ms",
                          "max_output_tokens_per_s",
                          "max_concurrent_requests",
                          "input_lens",
                          "output_lens",
                          "ttfts",
                          "itls",
                          "errors"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_FALSE(j.contains("p99_e2el_ms"));  // e2el not selected for percentiles

  SummaryOptions so;
  so.percentile_metrics = {"ttft", "tpot", "itl"};
  std::string table = format_summary(m, so);
  EXPECT_NE(table.find("============ Serving Benchmark Result ============"), std::string::npos);
  EXPECT_NE(table.find("Successful requests:                     2"), std::string::npos) << table;
  EXPECT_NE(table.find("Benchmark duration (s):                  2.00"), std::string::npos);
  EXPECT_NE(table.find("Request throughput (req/s):              1.00"), std::string::npos);
  EXPECT_NE(table.find("Output token throughput (tok/s):         2.00"), std::string::npos);
  EXPECT_NE(table.find("Mean TTFT (ms):                          150.00"), std::string::npos);
  EXPECT_NE(table.find("P99 TTFT (ms):"), std::string::npos);
  EXPECT_NE(table.find("---------------Time to First Token----------------"), std::string::npos);
  EXPECT_EQ(table.find("E2EL"), std::string::npos);
}

TEST(ServeMetrics, GoodputNeedsEverySlo) {
  auto slo = [](std::vector<std::string> specs) { return *parse_goodput(specs); };
  auto outs = sample_outputs();
  // ttft: A (100ms) meets 150ms, B (200ms) does not.
  EXPECT_DOUBLE_EQ(compute_metrics(outs, 2.0, {99}, slo({"ttft:150"})).request_goodput, 0.5);
  // tpot: A (500ms) misses 400ms; B has one token, counted as tpot 0.
  EXPECT_DOUBLE_EQ(compute_metrics(outs, 2.0, {99}, slo({"tpot:400"})).request_goodput, 0.5);
  EXPECT_DOUBLE_EQ(compute_metrics(outs, 2.0, {99}, slo({"ttft:150", "tpot:400"})).request_goodput,
                   0.0);
  EXPECT_DOUBLE_EQ(compute_metrics(outs, 2.0, {99}, slo({"e2el:2000"})).request_goodput, 1.0);
  EXPECT_FALSE(parse_goodput({"ttft"}).ok());
  EXPECT_FALSE(parse_goodput({"foo:1"}).ok());
  EXPECT_FALSE(parse_goodput({"ttft:abc"}).ok());
}

TEST(SseParser, EventsSurviveAnyChunking) {
  const std::string stream =
      "data: {\"a\":1}\n\ndata: b\r\n\r\n: keep-alive comment\n\nevent: x\ndata: l1\ndata:l2\n\n"
      "data: [DONE]\r\n\r\n";
  const std::vector<std::string> want = {"{\"a\":1}", "b", "l1\nl2", "[DONE]"};
  {
    SseParser p;
    EXPECT_EQ(p.feed(stream), want);
  }
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    SseParser p;
    auto got = p.feed(stream.substr(0, cut));
    for (auto& e : p.feed(stream.substr(cut))) got.push_back(e);
    EXPECT_EQ(got, want) << "cut at " << cut;
  }
  std::mt19937 rng(7);
  for (int iter = 0; iter < 200; ++iter) {
    SseParser p;
    std::vector<std::string> got;
    size_t pos = 0;
    while (pos < stream.size()) {
      size_t n = 1 + rng() % 7;
      for (auto& e : p.feed(stream.substr(pos, n))) got.push_back(e);
      pos += n;
    }
    EXPECT_EQ(got, want);
  }
  SseParser tail;
  EXPECT_TRUE(tail.feed("data: unterminated").empty());
  EXPECT_EQ(tail.finish(), std::vector<std::string>{"unterminated"});
}

TEST(ServeDataset, RandomLengthsRespectRangeRatio) {
  RandomDatasetOptions o;
  o.num_prompts = 300;
  o.input_len = 100;
  o.output_len = 40;
  o.range_ratio = 0.5;
  o.prefix_len = 7;
  auto reqs = make_random_dataset(o);
  ASSERT_TRUE(reqs.ok()) << reqs.status();
  ASSERT_EQ(reqs->size(), 300u);
  std::set<int64_t> in_lens;
  const auto& first = (*reqs)[0].prompt;
  for (const SampleRequest& r : *reqs) {
    ASSERT_TRUE(r.prompt.is_array());
    EXPECT_EQ(static_cast<int64_t>(r.prompt.size()), r.prompt_len);
    int64_t body = r.prompt_len - 7;
    EXPECT_GE(body, 50);
    EXPECT_LE(body, 150);
    EXPECT_GE(r.expected_output_len, 20);
    EXPECT_LE(r.expected_output_len, 60);
    in_lens.insert(body);
    for (int i = 0; i < 7; ++i) EXPECT_EQ(r.prompt[i], first[i]);  // shared prefix
    for (const auto& id : r.prompt) {
      EXPECT_GE(id.get<int64_t>(), 10);
      EXPECT_LT(id.get<int64_t>(), 1000);
    }
  }
  EXPECT_GT(in_lens.size(), 50u);  // lengths actually vary

  o.range_ratio = 0.0;
  o.prefix_len = 0;
  auto exact = make_random_dataset(o);
  ASSERT_TRUE(exact.ok());
  for (const SampleRequest& r : *exact) {
    EXPECT_EQ(r.prompt_len, 100);
    EXPECT_EQ(r.expected_output_len, 40);
  }
  auto again = make_random_dataset(o);
  EXPECT_EQ((*again)[3].prompt, (*exact)[3].prompt);  // seeded
  o.range_ratio = 1.5;
  EXPECT_FALSE(make_random_dataset(o).ok());
}

TEST(ServeDataset, PrefixRepetitionSharesPrefixes) {
  PrefixRepetitionOptions o;
  o.num_prompts = 10;
  o.prefix_len = 16;
  o.suffix_len = 8;
  o.num_prefixes = 3;
  o.output_len = 5;
  auto reqs = make_prefix_repetition_dataset(o);
  ASSERT_TRUE(reqs.ok()) << reqs.status();
  ASSERT_EQ(reqs->size(), 10u);
  std::map<std::string, int> prefixes;
  std::set<std::string> suffixes;
  for (const SampleRequest& r : *reqs) {
    EXPECT_EQ(r.prompt_len, 24);
    EXPECT_EQ(r.expected_output_len, 5);
    std::vector<int64_t> ids = r.prompt.get<std::vector<int64_t>>();
    nlohmann::json pre(std::vector<int64_t>(ids.begin(), ids.begin() + 16));
    nlohmann::json suf(std::vector<int64_t>(ids.begin() + 16, ids.end()));
    ++prefixes[pre.dump()];
    suffixes.insert(suf.dump());
  }
  EXPECT_EQ(prefixes.size(), 3u);
  std::multiset<int> counts;
  for (auto& [_, n] : prefixes) counts.insert(n);
  EXPECT_EQ(counts, (std::multiset<int>{3, 3, 4}));
  EXPECT_EQ(suffixes.size(), 10u);
}

TEST(ServeDataset, PoissonAndGammaArrivals) {
  auto inf = arrival_times(5, INFINITY, 1.0, 0);
  ASSERT_TRUE(inf.ok());
  for (double t : *inf) EXPECT_EQ(t, 0.0);

  auto gaps_of = [](const std::vector<double>& t) {
    std::vector<double> g;
    for (size_t i = 1; i < t.size(); ++i) g.push_back(t[i] - t[i - 1]);
    return g;
  };
  auto poisson = arrival_times(20000, 10.0, 1.0, 0);
  auto bursty = arrival_times(20000, 10.0, 0.25, 0);
  ASSERT_TRUE(poisson.ok() && bursty.ok());
  EXPECT_EQ((*poisson)[0], 0.0);
  auto pg = gaps_of(*poisson);
  auto bg = gaps_of(*bursty);
  EXPECT_NEAR(mean(pg), 0.1, 0.003);
  EXPECT_NEAR(mean(bg), 0.1, 0.006);
  // Coefficient of variation: 1 for exponential gaps, 1/sqrt(shape) = 2 for shape 0.25.
  EXPECT_NEAR(stddev(pg) / mean(pg), 1.0, 0.05);
  EXPECT_NEAR(stddev(bg) / mean(bg), 2.0, 0.15);
  EXPECT_EQ(*arrival_times(50, 10.0, 1.0, 3), *arrival_times(50, 10.0, 1.0, 3));
  EXPECT_NE(*arrival_times(50, 10.0, 1.0, 3), *arrival_times(50, 10.0, 1.0, 4));
  EXPECT_FALSE(arrival_times(5, 10.0, 0.0, 0).ok());
}

}  // namespace
}  // namespace moeserve::bench
