// The router's KV-event feed: the precise-prefix-cache-scorer's kvEventsConfig, and
// KvEventFeeder keeping the index in order over real ZMQ sockets, fed by the engine's
// publisher (late join resynced through its replay socket) and by a raw PUB socket whose
// sequence numbers the test controls (gaps and restarts clear the endpoint's blocks).
#include "router/kv_event_feeder.h"

#include <chrono>
#include <thread>

#include "../kv_events/raw_kv_event_publisher.h"
#include "gtest/gtest.h"
#include "kv_events/kv_event_publisher.h"
#include "router/precise_prefix_cache_scorer.h"
#include "test_helpers.h"

namespace moeserve::router {
namespace {

using namespace std::chrono_literals;

// A block hash in the integer form events carry (the low 64 bits of the engine's hash).
uint64_t hash_of(uint64_t low) {
  return low;
}

// One BlockStored of `n` blocks of 4 tokens each, tokens base, base+1, ...; chained after
// `parent` (engine hash id) when given.
kv_events::BlockStored stored(uint64_t first_hash, int n, int32_t base,
                              std::optional<uint64_t> parent = std::nullopt) {
  kv_events::BlockStored s;
  for (int i = 0; i < n; ++i) s.block_hashes.push_back(hash_of(first_hash + i));
  if (parent) s.parent_block_hash = hash_of(*parent);
  for (int i = 0; i < 4 * n; ++i) s.token_ids.push_back(base + i);
  s.block_size = 4;
  return s;
}

std::vector<uint32_t> tokens(int32_t base, int n) {
  std::vector<uint32_t> t;
  for (int i = 0; i < n; ++i) t.push_back(static_cast<uint32_t>(base + i));
  return t;
}

template <typename Pred>
bool wait_for(Pred pred, std::chrono::milliseconds limit = 5000ms) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

double hits(const KvEventIndex& index, const std::string& endpoint, const std::string& model,
            const std::vector<uint32_t>& prompt) {
  const auto keys = index.hasher().keys(index.hasher().root(model), prompt);
  auto m = index.longest_prefix(keys);
  auto it = m.find(endpoint);
  return it == m.end() ? 0.0 : it->second;
}

TEST(PrecisePrefixCacheScorerConfig, ReadsLlmdParameters) {
  auto p = testing::make_plugin(
      PrecisePrefixCacheScorer::kType,
      {{"indexerConfig", {{"tokenProcessorConfig", {{"blockSize", 64}, {"hashSeed", "42"}}}}},
       {"kvEventsConfig",
        {{"zmqEndpoint", "tcp://*:5999"},
         {"topicFilter", "kv@10."},
         {"discoverPods", true},
         {"podDiscoveryConfig", {{"socketPort", 5600}, {"replayPort", 5601}}}}},
       {"tokenizer", "none"}});
  ASSERT_NE(p, nullptr);
  auto* s = static_cast<PrecisePrefixCacheScorer*>(p.get());
  EXPECT_EQ(s->index()->hasher().block_size(), 64);
  EXPECT_EQ(s->index()->hasher().root("m"), TokenBlockHasher(64, "42").root("m"));
  EXPECT_TRUE(s->kv_events().enabled);
  EXPECT_EQ(s->kv_events().zmq_endpoint, "tcp://*:5999");
  EXPECT_EQ(s->kv_events().topic_filter, "kv@10.");
  EXPECT_TRUE(s->kv_events().discover_pods);
  EXPECT_EQ(s->kv_events().socket_port, 5600);
  EXPECT_EQ(s->kv_events().replay_port, 5601);
  EXPECT_FALSE(s->tokenize_with_endpoint());

  auto d = testing::make_plugin(PrecisePrefixCacheScorer::kType,
                                {{"tokenProcessorConfig", {{"blockSize", 32}}}});
  ASSERT_NE(d, nullptr);
  auto* ds = static_cast<PrecisePrefixCacheScorer*>(d.get());
  EXPECT_EQ(ds->index()->hasher().block_size(), 32);
  EXPECT_FALSE(ds->kv_events().enabled);  // no kvEventsConfig: no subscriber
  EXPECT_TRUE(ds->tokenize_with_endpoint());

  PluginContext ctx;
  for (const nlohmann::json& bad :
       {nlohmann::json{{"tokenizer", "hf"}}, nlohmann::json{{"kvEventsConfig", 3}},
        nlohmann::json{{"kvEventsConfig", {{"podDiscoveryConfig", {{"socketPort", 0}}}}}},
        nlohmann::json{{"tokenProcessorConfig", {{"blockSize", "x"}}}}}) {
    EXPECT_FALSE(
        PluginRegistry::builtin().create({"p", PrecisePrefixCacheScorer::kType, bad}, ctx).ok())
        << bad.dump();
  }
}

// Central collector (llm-d's default): the router binds, engines connect with topics
// kv@<host:port>@<model>; events go to the endpoint the topic names.
TEST(KvEventFeeder, CentralCollectorAttributesByTopic) {
  auto index = std::make_shared<InMemoryKvEventIndex>(TokenBlockHasher(4, ""));
  KvEventsSettings s;
  s.enabled = true;
  s.zmq_endpoint = "tcp://127.0.0.1:*";
  auto feeder = KvEventFeeder::start(s, index, nullptr);
  ASSERT_TRUE(feeder.ok()) << feeder.status();
  const std::string central = (*feeder)->central_endpoint();
  ASSERT_NE(central.find("tcp://127.0.0.1:"), std::string::npos) << central;

  kv_events::KvEventsConfig c;
  c.enable_kv_cache_events = true;
  c.publisher = "zmq";
  c.endpoint = central;  // no '*': the engine connects
  c.topic = "kv@10.0.0.7:8000@tiny";
  auto pub = kv_events::ZmqKvEventPublisher::create(c, {});
  ASSERT_TRUE(pub.ok()) << pub.status();
  // A PUB drops what it sends before the subscription reaches it: repeat the (idempotent)
  // store until it arrives.
  ASSERT_TRUE(wait_for([&] {
    (*pub)->publish(stored(1, 3, 100));
    (*pub)->end_step();
    return index->num_blocks("10.0.0.7:8000") == 3;
  }));
  EXPECT_DOUBLE_EQ(hits(*index, "10.0.0.7:8000", "tiny", tokens(100, 12)), 3.0);
  EXPECT_DOUBLE_EQ(hits(*index, "10.0.0.7:8000", "tiny", tokens(100, 9)), 2.0);
  EXPECT_DOUBLE_EQ(hits(*index, "10.0.0.7:8000", "other-model", tokens(100, 12)), 0.0);
  // Evictions by engine hash.
  (*pub)->publish(kv_events::BlockRemoved{{hash_of(3)}, std::nullopt});
  (*pub)->end_step();
  ASSERT_TRUE(wait_for([&] { return index->num_blocks("10.0.0.7:8000") == 2; }));
  EXPECT_GE((*feeder)->stats().batches, 2u);

  std::vector<EndpointState> eps = {testing::make_endpoint("10.0.0.7:8000")};
  const std::string text = (*feeder)->render_metrics(eps);
  EXPECT_NE(text.find("moeserve_router_kv_index_blocks{endpoint=\"10.0.0.7:8000\"} 2"),
            std::string::npos)
      << text;
}

// Per-endpoint subscribers (discoverPods) with the publisher's replay socket: batches sent
// before the router subscribed are fetched by replay.
TEST(KvEventFeeder, LateJoinResyncsThroughReplay) {
  kv_events::KvEventsConfig c;
  c.enable_kv_cache_events = true;
  c.publisher = "zmq";
  c.endpoint = "tcp://127.0.0.1:*";
  c.replay_endpoint = "tcp://127.0.0.1:*";
  c.topic = "kv@ignored@tiny";
  auto pub = kv_events::ZmqKvEventPublisher::create(c, {});
  ASSERT_TRUE(pub.ok()) << pub.status();
  // Two prompts stored and one block of the second evicted, before anyone listens.
  (*pub)->publish(stored(1, 2, 100));
  (*pub)->end_step();
  (*pub)->publish(stored(11, 3, 500));
  (*pub)->end_step();
  (*pub)->publish(kv_events::BlockRemoved{{hash_of(13)}, std::nullopt});
  (*pub)->end_step();
  ASSERT_TRUE(wait_for([&] { return (*pub)->stats().batches_sent == 3; }));

  EndpointPool pool;
  EndpointSpec spec{
      "127.0.0.1:18000",
      {{kKvEventsLabel, (*pub)->endpoint()}, {kKvEventsReplayLabel, (*pub)->replay_endpoint()}}};
  pool.set_endpoints({spec});
  auto index = std::make_shared<InMemoryKvEventIndex>(TokenBlockHasher(4, ""));
  KvEventsSettings s;
  s.enabled = true;
  s.discover_pods = true;
  auto feeder = KvEventFeeder::start(s, index, &pool, 20ms);
  ASSERT_TRUE(feeder.ok()) << feeder.status();
  // The first batch the subscriber sees is numbered > 0: everything before it is replayed.
  ASSERT_TRUE(wait_for([&] {
    (*pub)->publish(stored(21, 1, 900));
    (*pub)->end_step();
    return (*feeder)->stats().batches > 0;
  }));
  const KvEventFeederStats st = (*feeder)->stats();
  EXPECT_GE(st.replayed_batches, 3u);
  EXPECT_EQ(st.clears, 0u);
  EXPECT_DOUBLE_EQ(hits(*index, "127.0.0.1:18000", "tiny", tokens(100, 8)), 2.0);
  EXPECT_DOUBLE_EQ(hits(*index, "127.0.0.1:18000", "tiny", tokens(500, 12)), 2.0);  // 3rd gone
  EXPECT_DOUBLE_EQ(hits(*index, "127.0.0.1:18000", "tiny", tokens(900, 4)), 1.0);

  // The endpoint leaving the pool stops its subscriber; the index itself is cleared by the
  // scorer's endpoint_removed (not the feeder's business).
  pool.set_endpoints({});
  std::this_thread::sleep_for(100ms);
  const uint64_t before = (*feeder)->stats().batches;
  (*pub)->publish(stored(31, 1, 1300));
  (*pub)->end_step();
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ((*feeder)->stats().batches, before);
}

using RawPublisher = kv_events::testing::RawKvEventPublisher;

TEST(KvEventFeeder, GapsAndRestartsWithoutReplayClearTheEndpoint) {
  RawPublisher raw;
  EndpointPool pool;
  pool.set_endpoints({EndpointSpec{"127.0.0.1:18001", {{kKvEventsLabel, raw.endpoint()}}}});
  auto index = std::make_shared<InMemoryKvEventIndex>(TokenBlockHasher(4, ""));
  KvEventsSettings s;
  s.enabled = true;
  s.discover_pods = true;
  auto feeder = KvEventFeeder::start(s, index, &pool, 20ms);
  ASSERT_TRUE(feeder.ok()) << feeder.status();
  // Warm up on another stream (another model's topic) until the subscription is in place.
  uint64_t warm = 0;
  ASSERT_TRUE(wait_for([&] {
    raw.send("kv@x@warm-up", warm++, {});
    return (*feeder)->stats().batches > 0;
  }));
  const std::string ep = "127.0.0.1:18001";
  // Warm-up batches may still be in flight: wait on what each step changes.
  raw.send("kv@x@tiny", 0, {stored(1, 2, 100)});
  raw.send("kv@x@tiny", 1, {stored(11, 1, 500)});
  ASSERT_TRUE(wait_for([&] { return index->num_blocks(ep) == 3; }));
  EXPECT_EQ((*feeder)->stats().gaps, 0u);

  // Batches 2..4 lost: what the router knows may be stale, so the endpoint starts over.
  raw.send("kv@x@tiny", 5, {stored(21, 2, 900)});
  ASSERT_TRUE(wait_for([&] { return (*feeder)->stats().gaps == 1; }));
  ASSERT_TRUE(wait_for([&] { return hits(*index, ep, "tiny", tokens(900, 8)) == 2.0; }));
  EXPECT_EQ((*feeder)->stats().clears, 1u);
  EXPECT_EQ(index->num_blocks(ep), 2u);
  EXPECT_DOUBLE_EQ(hits(*index, ep, "tiny", tokens(100, 8)), 0.0);

  // The engine restarted (numbering from 0 again): its cache is new.
  raw.send("kv@x@tiny", 0, {stored(31, 1, 1300)});
  ASSERT_TRUE(wait_for([&] { return hits(*index, ep, "tiny", tokens(1300, 4)) == 1.0; }));
  EXPECT_EQ((*feeder)->stats().restarts, 1u);
  EXPECT_EQ(index->num_blocks(ep), 1u);
  EXPECT_DOUBLE_EQ(hits(*index, ep, "tiny", tokens(900, 8)), 0.0);
  EXPECT_EQ((*feeder)->stats().dropped, 0u);
}

}  // namespace
}  // namespace moeserve::router
