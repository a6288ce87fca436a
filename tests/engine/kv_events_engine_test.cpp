// End to end: an LlmEngine on a tiny generated model publishes KV events over real ZMQ
// (loopback TCP, ephemeral port); a subscriber sees BlockStored events whose hashes are
// vLLM's chained block hashes of the prompts' full blocks, consecutive sequence numbers, and
// BlockRemoved events for exactly the least recently used blocks when the small cache evicts.
#include <stdlib.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <random>
#include <set>

#include "../gen/tiny_model.h"
#include "engine/llm_engine.h"
#include "gtest/gtest.h"
#include "kv_events/kv_event_publisher.h"
#include "kv_events/kv_event_subscriber.h"
#include "model/deepseek.h"

namespace moeserve::engine {
namespace {

using namespace ::moeserve::kv_events;  // the decoder and subscriber under test

constexpr int32_t kBlock = 16;

const std::string& tiny_model() { return ::moeserve::testing::tiny_model("kv_events_engine_test", 5); }

class Done final : public OutputSink {
 public:
  void on_output(EngineOutput o) override {
    std::lock_guard<std::mutex> lk(mu_);
    if (o.finished) {
      reason_ = std::string(finish_reason_name(o.finish_reason.value_or(FinishReason::kError)));
      done_ = true;
      cv_.notify_all();
    }
  }
  std::string wait() {
    std::unique_lock<std::mutex> lk(mu_);
    EXPECT_TRUE(cv_.wait_for(lk, std::chrono::seconds(60), [&] { return done_; }));
    return reason_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::string reason_;
};

struct Inbox {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<KvEventDelivery> got;
  bool wait_for_seq(uint64_t seq, int ms) {
    std::unique_lock<std::mutex> lk(mu);
    return cv.wait_for(lk, std::chrono::milliseconds(ms),
                       [&] { return !got.empty() && got.back().message.seq >= seq; });
  }
};

std::vector<int32_t> prompt(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> p(n);
  for (auto& t : p) t = 4 + static_cast<int32_t>(rng() % 400);
  return p;
}

TEST(KvEventsEngine, PublishesChainedStoresAndLruEvictions) {
  // The engine's hasher reads PYTHONHASHSEED when it is created; fix it to predict hashes.
  ASSERT_EQ(setenv("PYTHONHASHSEED", "42", 1), 0);
  const BlockHasher hasher(HashAlgo::kSha256,
                           BlockHasher::make_none_hash(HashAlgo::kSha256, std::string("42")));

  KvEventsConfig kc;
  kc.enable_kv_cache_events = true;
  kc.publisher = "zmq";
  kc.endpoint = "tcp://127.0.0.1:*";
  kc.topic = "kv@127.0.0.1:8000@tiny";
  auto pub = ZmqKvEventPublisher::create(kc, {});
  ASSERT_TRUE(pub.ok()) << pub.status();

  Inbox inbox;
  KvEventSubscriberOptions so;
  so.endpoints = {(*pub)->endpoint()};
  auto sub = KvEventSubscriber::start(so, [&](const KvEventDelivery& d) {
    std::lock_guard<std::mutex> lk(inbox.mu);
    inbox.got.push_back(d);
    inbox.cv.notify_all();
  });
  ASSERT_TRUE(sub.ok()) << sub.status();
  // Probe (before the engine exists, so this thread may use the sink) until subscribed.
  uint64_t probes = 0;
  while (true) {
    (*pub)->publish(AllBlocksCleared{});
    (*pub)->end_step();
    ++probes;
    std::unique_lock<std::mutex> lk(inbox.mu);
    if (inbox.cv.wait_for(lk, std::chrono::milliseconds(50), [&] { return !inbox.got.empty(); }))
      break;
    ASSERT_LT(probes, 100u) << "the subscriber never connected";
  }
  ASSERT_TRUE(inbox.wait_for_seq(probes - 1, 5000));
  size_t first;
  {
    std::lock_guard<std::mutex> lk(inbox.mu);
    first = inbox.got.size();
  }

  // 8 usable blocks of 16 tokens; each request (40 prompt + 4 generated tokens) takes 3 and
  // leaves 2 full prompt blocks cached, so the fourth request must evict.
  auto model = DeepseekModel::load(tiny_model());
  ASSERT_TRUE(model.ok()) << model.status();
  EngineConfig c;
  c.scheduler.max_num_batched_tokens = 64;
  c.scheduler.max_num_seqs = 4;
  c.scheduler.max_model_len = 64;
  c.cache.num_blocks = 9;
  c.cache.block_size = kBlock;
  c.cache.enable_prefix_caching = true;
  c.cache.hash_algo = HashAlgo::kSha256;
  c.sampler_seed = 1;
  auto engine = LlmEngine::create(c, std::move(*model), nullptr, pub->get());
  ASSERT_TRUE(engine.ok()) << engine.status();

  constexpr int kRequests = 6;
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::vector<uint64_t>> want_hashes;
  for (int i = 0; i < kRequests; ++i) {
    prompts.push_back(prompt(40, 100 + i));
    std::vector<uint64_t> hs;
    BlockHash parent;
    for (int b = 0; b < 2; ++b) {
      std::span<const int32_t> toks(prompts.back().data() + b * kBlock, kBlock);
      parent = hasher.hash_block(b == 0 ? nullptr : &parent, toks, std::nullopt);
      hs.push_back(parent.to_u64());
    }
    want_hashes.push_back(hs);
    auto done = std::make_shared<Done>();
    NewRequest r;
    r.request_id = absl::StrCat("r", i);
    r.prompt_token_ids = prompts.back();
    r.params.temperature = 0.0;
    r.params.max_tokens = 4;
    r.params.ignore_eos = true;
    r.sink = done;
    ASSERT_TRUE((*engine)->add_request(std::move(r)).ok());
    EXPECT_EQ(done->wait(), "length");  // one at a time: a deterministic LRU order
  }
  (*engine)->shutdown(/*drain=*/true);
  const uint64_t last_seq = (*pub)->stats().batches_queued - 1;
  EXPECT_EQ((*pub)->stats().batches_dropped, 0u);
  ASSERT_TRUE(inbox.wait_for_seq(last_seq, 10000));

  std::lock_guard<std::mutex> lk(inbox.mu);
  // Sequence numbers grow by one, nothing lost.
  for (size_t i = first; i < inbox.got.size(); ++i) {
    EXPECT_EQ(inbox.got[i].message.seq, inbox.got[i - 1].message.seq + 1);
    EXPECT_EQ(inbox.got[i].missed_before, 0u);
    EXPECT_EQ(inbox.got[i].message.topic, "kv@127.0.0.1:8000@tiny");
    EXPECT_EQ(inbox.got[i].message.batch.data_parallel_rank, 0);
  }
  // Replay the event stream into an index and check it against the requests.
  std::vector<BlockStored> stores;
  std::vector<std::vector<uint64_t>> removals;
  std::set<uint64_t> live;
  for (size_t i = first; i < inbox.got.size(); ++i) {
    for (const KVCacheEvent& ev : inbox.got[i].message.batch.events) {
      if (const auto* s = std::get_if<BlockStored>(&ev)) {
        stores.push_back(*s);
        // A chain continues from a block the index holds, or starts a prompt.
        if (s->parent_block_hash) {
          EXPECT_TRUE(live.contains(*s->parent_block_hash));
        }
        for (uint64_t h : s->block_hashes) EXPECT_TRUE(live.insert(h).second);
      } else if (const auto* r = std::get_if<BlockRemoved>(&ev)) {
        removals.push_back(r->block_hashes);
        for (uint64_t h : r->block_hashes) EXPECT_EQ(live.erase(h), 1u) << "unknown block";
        EXPECT_EQ(r->medium, "GPU");
      } else {
        ADD_FAILURE() << "unexpected AllBlocksCleared";
      }
    }
  }
  // Every request stored its two full prompt blocks, in order, with vLLM's hashes.
  std::vector<uint64_t> stored_hashes;
  std::vector<int32_t> stored_tokens;
  for (const BlockStored& s : stores) {
    EXPECT_EQ(s.block_size, kBlock);
    EXPECT_EQ(s.medium, "GPU");
    EXPECT_FALSE(s.lora_id.has_value());
    EXPECT_EQ(s.token_ids.size(), s.block_hashes.size() * kBlock);
    if (!s.block_hashes.empty()) {
      // The parent is the hash right before this event's first block in the same request.
      const auto it = std::find(stored_hashes.begin(), stored_hashes.end(), s.block_hashes[0]);
      EXPECT_EQ(it, stored_hashes.end());
      if (stored_hashes.size() % 2 == 0) {
        EXPECT_FALSE(s.parent_block_hash.has_value());
      } else {
        EXPECT_EQ(s.parent_block_hash, stored_hashes.back());
      }
    }
    stored_hashes.insert(stored_hashes.end(), s.block_hashes.begin(), s.block_hashes.end());
    stored_tokens.insert(stored_tokens.end(), s.token_ids.begin(), s.token_ids.end());
  }
  std::vector<uint64_t> want_all;
  std::vector<int32_t> want_tokens;
  for (int i = 0; i < kRequests; ++i) {
    want_all.insert(want_all.end(), want_hashes[i].begin(), want_hashes[i].end());
    want_tokens.insert(want_tokens.end(), prompts[i].begin(), prompts[i].begin() + 2 * kBlock);
  }
  EXPECT_EQ(stored_hashes, want_all);
  EXPECT_EQ(stored_tokens, want_tokens);
  // The cache evicted, least recently used first: request 0's blocks go before request 1's.
  ASSERT_FALSE(removals.empty());
  std::vector<uint64_t> removed;
  for (const auto& r : removals) removed.insert(removed.end(), r.begin(), r.end());
  ASSERT_GE(removed.size(), 2u);
  EXPECT_EQ(std::set<uint64_t>(removed.begin(), removed.begin() + 2),
            std::set<uint64_t>(want_hashes[0].begin(), want_hashes[0].end()));
  if (removed.size() >= 4) {
    EXPECT_EQ(std::set<uint64_t>(removed.begin() + 2, removed.begin() + 4),
              std::set<uint64_t>(want_hashes[1].begin(), want_hashes[1].end()));
  }
  // What is still live is what the engine still caches: the latest requests' blocks.
  for (uint64_t h : want_hashes[kRequests - 1]) EXPECT_TRUE(live.contains(h));
}

}  // namespace
}  // namespace moeserve::engine
