// Prefix hashing and indexes, engine metrics from a scrape, endpoint lists and the endpoint pool.
#include "gtest/gtest.h"
#include "router/approx_prefix_index.h"
#include "router/endpoint_pool.h"
#include "router/engine_metrics.h"
#include "router/prefix_hash.h"
#include "router/request_parser.h"
#include "router/token_block_hasher.h"
#include "xxhash.h"

namespace moeserve::router {
namespace {

TEST(PrefixHash, ChainedXxhash) {
  auto h = chained_prefix_hashes("m", "salt", "abcdefghij", 4, 256);
  ASSERT_EQ(h.size(), 3u);  // abcd efgh ij (partial block hashed)
  uint64_t seed = XXH64("msalt", 5, 0);
  std::string b0 = "abcd";
  for (int i = 0; i < 8; ++i) b0.push_back(static_cast<char>((seed >> (8 * i)) & 0xff));
  EXPECT_EQ(h[0], XXH64(b0.data(), b0.size(), 0));
  std::string b2 = "ij";
  for (int i = 0; i < 8; ++i) b2.push_back(static_cast<char>((h[1] >> (8 * i)) & 0xff));
  EXPECT_EQ(h[2], XXH64(b2.data(), b2.size(), 0));
  // Chaining: the same block after a different prefix hashes differently.
  auto g = chained_prefix_hashes("m", "salt", "zzzzefgh", 4, 256);
  EXPECT_NE(g[1], h[1]);
  EXPECT_EQ(chained_prefix_hashes("m", "salt", "abcdefghij", 4, 2).size(), 2u);
  EXPECT_TRUE(chained_prefix_hashes("m", "", "", 4, 8).empty());
}

TEST(ApproxPrefixIndex, GreedyMatchAndLruEviction) {
  ApproxPrefixIndex idx;
  std::vector<uint64_t> a = {1, 2, 3, 4};
  idx.add("x", a, 10);
  idx.add("y", std::vector<uint64_t>{1, 2}, 10);
  auto m = idx.match(a);
  EXPECT_EQ(m["x"], 4);
  EXPECT_EQ(m["y"], 2);
  // The walk stops at the first hash nobody holds.
  auto stop = idx.match(std::vector<uint64_t>{1, 99, 2});
  EXPECT_EQ(stop["x"], 1);

  // Capacity 3: adding 4 hashes keeps the leading 3 (inserted last = most recent).
  ApproxPrefixIndex small;
  small.add("x", a, 3);
  EXPECT_EQ(small.num_hashes("x"), 3u);
  EXPECT_TRUE(small.contains("x", 1));
  EXPECT_FALSE(small.contains("x", 4));
  // New prompt evicts the least recently used.
  small.add("x", std::vector<uint64_t>{7}, 3);
  EXPECT_TRUE(small.contains("x", 7));
  EXPECT_FALSE(small.contains("x", 3));
  EXPECT_EQ(small.match(std::vector<uint64_t>{3})["x"], 0);
  // Touching moves to the front.
  small.add("x", std::vector<uint64_t>{2}, 3);
  small.add("x", std::vector<uint64_t>{8}, 3);
  EXPECT_TRUE(small.contains("x", 2));
  EXPECT_FALSE(small.contains("x", 1));
  small.remove_endpoint("x");
  EXPECT_EQ(small.num_hashes("x"), 0u);
  EXPECT_TRUE(small.match(std::vector<uint64_t>{2}).empty());
}

TEST(TokenBlockHasher, CanonicalCborFnv) {
  // [1, [2, 3], null] -> 83 01 82 02 03 f6
  std::vector<uint32_t> toks = {2, 3};
  auto payload = cbor_block_payload(1, &toks, {});
  EXPECT_EQ(payload, (std::vector<uint8_t>{0x83, 0x01, 0x82, 0x02, 0x03, 0xf6}));
  // Large integers use the shortest head; text extra is major type 3.
  std::vector<uint32_t> big = {500, 70000};
  auto p2 = cbor_block_payload(0x1'0000'0000ULL, &big, "ab");
  EXPECT_EQ(p2, (std::vector<uint8_t>{0x83, 0x1b, 0,    0,    0, 1, 0,    0,    0,    0,   0x82,
                                      0x19, 0x01, 0xf4, 0x1a, 0, 1, 0x11, 0x70, 0x62, 'a', 'b'}));
  auto p3 = cbor_block_payload(5, nullptr, "m");
  EXPECT_EQ(p3, (std::vector<uint8_t>{0x83, 0x05, 0xf6, 0x61, 'm'}));
  // FNV-1a 64 of "a" (published test vector).
  const uint8_t a = 'a';
  EXPECT_EQ(fnv1a64(std::span<const uint8_t>(&a, 1)), 0xaf63dc4c8601ec8cULL);
  TokenBlockHasher h(2, "");
  auto keys = h.keys(h.root("m"), std::vector<uint32_t>{1, 2, 3, 4, 5});
  ASSERT_EQ(keys.size(), 2u);  // partial block not keyed
  EXPECT_EQ(keys[1], h.block_key(keys[0], {3, 4}));
  EXPECT_NE(h.root("m"), h.root("n"));
}

TEST(EngineMetrics, ExtractsVllmGauges) {
  const char* text =
      "vllm:num_requests_waiting{engine=\"0\",model_name=\"m\"} 3.0\n"
      "vllm:num_requests_waiting{engine=\"1\",model_name=\"m\"} 2.0\n"
      "vllm:num_requests_running{engine=\"0\",model_name=\"m\"} 7\n"
      "vllm:gpu_cache_usage_perc{model_name=\"m\"} 0.9\n"
      "vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"m\"} 0.25 1700000000000\n"
      "vllm:cache_config_info{block_size=\"16\",cache_dtype=\"auto\",num_gpu_blocks=\"4096\","
      "enable_prefix_caching=\"True\"} 1.0\n";
  auto samples = net::parse_prometheus_text(text);
  ASSERT_TRUE(samples.ok()) << samples.status();
  auto m = extract_engine_metrics(*samples);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_DOUBLE_EQ(m->waiting, 5);
  EXPECT_DOUBLE_EQ(m->running, 7);
  EXPECT_DOUBLE_EQ(m->kv_usage, 0.25);  // kv_cache_usage_perc preferred
  EXPECT_EQ(m->block_size, 16);
  EXPECT_EQ(m->num_gpu_blocks, 4096);

  auto old = net::parse_prometheus_text(
      "vllm:num_requests_waiting 0\nvllm:gpu_cache_usage_perc{x=\"y\"} 0.5\n");
  ASSERT_TRUE(old.ok());
  EXPECT_DOUBLE_EQ(extract_engine_metrics(*old)->kv_usage, 0.5);  // fallback

  auto unrelated = net::parse_prometheus_text("process_cpu_seconds_total 5\n");
  ASSERT_TRUE(unrelated.ok());
  EXPECT_FALSE(extract_engine_metrics(*unrelated).ok());
}

TEST(EndpointList, ParsesFlagAndFile) {
  auto l = parse_endpoint_list("127.0.0.1:8000, 127.0.0.1:8001@prefill");
  ASSERT_TRUE(l.ok()) << l.status();
  ASSERT_EQ(l->size(), 2u);
  EXPECT_EQ((*l)[1].labels.at(kRoleLabel), "prefill");
  EXPECT_FALSE(parse_endpoint_list("localhost").ok());
  EXPECT_FALSE(parse_endpoint_list("h:99999").ok());

  auto y = parse_endpoints_document(
      "endpoints:\n- 127.0.0.1:9000\n- address: 127.0.0.1:9001\n  role: decode\n  model: m\n"
      "  labels:\n    zone: a\n");
  ASSERT_TRUE(y.ok()) << y.status();
  ASSERT_EQ(y->size(), 2u);
  EXPECT_EQ((*y)[1].labels.at(kRoleLabel), "decode");
  EXPECT_EQ((*y)[1].labels.at(kModelLabel), "m");
  EXPECT_EQ((*y)[1].labels.at("zone"), "a");
  auto j = parse_endpoints_document(R"([{"address": "127.0.0.1:1"}, "127.0.0.1:2"])");
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ(j->size(), 2u);
  EXPECT_FALSE(parse_endpoints_document("endpoints: {a: 1}").ok());
}

TEST(EndpointPool, HealthAndMembership) {
  EndpointPool pool(2);
  std::vector<std::string> removed;
  pool.set_removal_callback([&](const std::string& a) { removed.push_back(a); });
  pool.set_endpoints(*parse_endpoint_list("127.0.0.1:1,127.0.0.1:2"));
  EndpointMetrics m;
  m.valid = true;
  m.waiting = 4;
  pool.record_success("127.0.0.1:1", m);
  pool.add_active("127.0.0.1:1", 2);
  EXPECT_FALSE(pool.record_failure("127.0.0.1:2"));
  EXPECT_TRUE(pool.record_failure("127.0.0.1:2"));
  auto healthy = pool.healthy_snapshot();
  ASSERT_EQ(healthy.size(), 1u);
  EXPECT_EQ(healthy[0].address, "127.0.0.1:1");
  EXPECT_DOUBLE_EQ(healthy[0].metrics.waiting, 4);
  EXPECT_EQ(healthy[0].active_requests, 2);
  pool.record_success("127.0.0.1:2", m);
  EXPECT_EQ(pool.healthy_snapshot().size(), 2u);
  // Re-setting keeps state of known endpoints and reports removals.
  pool.set_endpoints(*parse_endpoint_list("127.0.0.1:1,127.0.0.1:3"));
  EXPECT_EQ(removed, std::vector<std::string>{"127.0.0.1:2"});
  EXPECT_EQ(pool.active("127.0.0.1:1"), 2);
  EXPECT_TRUE(pool.contains("127.0.0.1:3"));
}

TEST(RequestParser, CompletionAndChat) {
  auto c = make_scheduling_request("/v1/completions",
                                   nlohmann::json{{"model", "m"}, {"prompt", {1, 2, 3}}}, {}, "r");
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(c->prompt_tokens.has_value());
  EXPECT_EQ(c->prompt_tokens->size(), 3u);
  auto t = make_scheduling_request("/v1/completions", {{"prompt", "hello"}}, {}, "r");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->prompt_text, "hello");
  EXPECT_FALSE(t->prompt_tokens.has_value());
  nlohmann::json msgs = nlohmann::json::array({{{"role", "user"}, {"content", "hi"}}});
  auto ch = make_scheduling_request("/v1/chat/completions", {{"messages", msgs}}, {}, "r");
  ASSERT_TRUE(ch.ok());
  EXPECT_EQ(ch->prompt_text, msgs.dump());
  EXPECT_FALSE(make_scheduling_request("/v1/chat/completions", {{"prompt", "x"}}, {}, "r").ok());
  EXPECT_FALSE(make_scheduling_request("/v1/completions", nlohmann::json::array(), {}, "r").ok());
}

}  // namespace
}  // namespace moeserve::router
