// Block pool and KV-cache manager behaviour, after vLLM's tests/v1/core/test_prefix_caching.py.
#include "engine/kv_cache_manager.h"

#include <gtest/gtest.h>

#include <numeric>

namespace moeserve::engine {
namespace {

constexpr int32_t kBlockSize = 4;

std::vector<int32_t> ids_of(const std::vector<KVCacheBlock*>& blocks) {
  std::vector<int32_t> out;
  for (const KVCacheBlock* b : blocks) out.push_back(b->block_id);
  return out;
}

std::vector<int32_t> free_ids(const BlockPool& pool) {
  return ids_of(pool.free_queue().get_all_free_blocks());
}

std::unique_ptr<Request> make_request(const std::string& id, std::vector<int32_t> prompt,
                                      std::string salt = "") {
  SamplingParams sp;
  return std::make_unique<Request>(id, std::move(prompt), sp, std::nullopt, std::move(salt));
}

std::vector<int32_t> iota_tokens(int32_t n, int32_t start = 0) {
  std::vector<int32_t> v(n);
  std::iota(v.begin(), v.end(), start);
  return v;
}

KVCacheManager make_manager(int32_t num_blocks, bool caching = true) {
  KVCacheConfig c;
  c.num_blocks = num_blocks;
  c.block_size = kBlockSize;
  c.enable_prefix_caching = caching;
  c.max_model_len = 1 << 20;
  return KVCacheManager(c, BlockHasher(HashAlgo::kSha256, BlockHash(std::string(32, 'n'))));
}

// Allocates a whole prompt the way the scheduler does for a new request.
std::vector<int32_t> admit(KVCacheManager& m, Request& r) {
  ComputedBlocks hit = m.get_computed_blocks(r);
  auto blocks = m.allocate_slots(r, r.num_tokens() - hit.num_computed_tokens,
                                 hit.num_computed_tokens, hit.blocks);
  EXPECT_TRUE(blocks.has_value());
  r.num_computed_tokens = r.num_tokens();
  return m.get_block_ids(r.request_id);
}

TEST(FreeBlockQueueTest, InitialOrderPopRemoveAppend) {
  std::vector<KVCacheBlock> blocks(5);
  std::vector<KVCacheBlock*> ptrs;
  for (int i = 0; i < 5; ++i) {
    blocks[i].block_id = i;
    ptrs.push_back(&blocks[i]);
  }
  FreeKVCacheBlockQueue q(ptrs);
  EXPECT_EQ(q.num_free_blocks(), 5);
  EXPECT_EQ(q.popleft()->block_id, 0);
  q.remove(&blocks[2]);  // middle, O(1)
  q.append(&blocks[0]);
  EXPECT_EQ(ids_of(q.get_all_free_blocks()), (std::vector<int32_t>{1, 3, 4, 0}));
  EXPECT_EQ(ids_of(q.popleft_n(2)), (std::vector<int32_t>{1, 3}));
  EXPECT_EQ(q.num_free_blocks(), 2);
}

TEST(BlockPoolTest, NullBlockReservedAndUsageExcludesIt) {
  BlockPool pool(11, true);
  EXPECT_TRUE(pool.null_block()->is_null);
  EXPECT_EQ(pool.null_block()->block_id, 0);
  EXPECT_EQ(pool.get_num_free_blocks(), 10);
  EXPECT_EQ(free_ids(pool).front(), 1);
  EXPECT_DOUBLE_EQ(pool.get_usage(), 0.0);
  auto got = pool.get_new_blocks(4);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(ids_of(*got), (std::vector<int32_t>{1, 2, 3, 4}));
  EXPECT_DOUBLE_EQ(pool.get_usage(), 0.4);  // 1 - 6/10
  EXPECT_FALSE(pool.get_new_blocks(7).has_value());
  pool.free_blocks(*got);
  EXPECT_DOUBLE_EQ(pool.get_usage(), 0.0);
  // Freed blocks go to the tail in the order given.
  EXPECT_EQ(free_ids(pool), (std::vector<int32_t>{5, 6, 7, 8, 9, 10, 1, 2, 3, 4}));
}

TEST(KVCacheManagerTest, OnlyFullBlocksCachedAndHitCappedAtNumTokensMinusOne) {
  KVCacheManager m = make_manager(20);
  auto a = make_request("a", iota_tokens(10));  // 2 full blocks + 2 tokens
  EXPECT_EQ(admit(m, *a), (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(a->block_hashes.size(), 2u);
  EXPECT_EQ(m.block_pool().num_cached_hashes(), 2u);

  // Same 10-token prompt: both full blocks hit (8 tokens <= 9).
  auto b = make_request("b", iota_tokens(10));
  ComputedBlocks hit = m.get_computed_blocks(*b);
  EXPECT_EQ(hit.num_computed_tokens, 8);
  EXPECT_EQ(ids_of(hit.blocks), (std::vector<int32_t>{1, 2}));

  // Exactly 8 tokens: max hit is 7 tokens -> only the first block.
  auto c = make_request("c", iota_tokens(8));
  EXPECT_EQ(m.get_computed_blocks(*c).num_computed_tokens, 4);

  // Chained: a different first block breaks the chain even if block 2 matches.
  std::vector<int32_t> p = iota_tokens(10);
  p[0] = 999;
  auto d = make_request("d", p);
  EXPECT_EQ(m.get_computed_blocks(*d).num_computed_tokens, 0);
  // A differing second block stops the walk after the first.
  p = iota_tokens(10);
  p[5] = 999;
  auto e = make_request("e", p);
  EXPECT_EQ(m.get_computed_blocks(*e).num_computed_tokens, 4);

  PrefixCacheStats s = m.take_prefix_cache_stats();
  EXPECT_EQ(s.requests, 5);
  EXPECT_EQ(s.queries, 10 + 10 + 8 + 10 + 10);
  EXPECT_EQ(s.hits, 0 + 8 + 4 + 0 + 4);
  EXPECT_EQ(m.take_prefix_cache_stats().queries, 0);
}

TEST(KVCacheManagerTest, CacheSaltSeparatesFirstBlock) {
  KVCacheManager m = make_manager(20);
  auto a = make_request("a", iota_tokens(9), "tenant1");
  admit(m, *a);
  EXPECT_EQ(
      m.get_computed_blocks(*make_request("b", iota_tokens(9), "tenant1")).num_computed_tokens, 8);
  EXPECT_EQ(
      m.get_computed_blocks(*make_request("c", iota_tokens(9), "tenant2")).num_computed_tokens, 0);
  EXPECT_EQ(m.get_computed_blocks(*make_request("d", iota_tokens(9))).num_computed_tokens, 0);
}

TEST(KVCacheManagerTest, SkippedWithPromptLogprobsOrCachingOff) {
  KVCacheManager m = make_manager(20);
  admit(m, *make_request("a", iota_tokens(9)));
  auto b = make_request("b", iota_tokens(9));
  b->sampling_params.prompt_logprobs = 0;
  EXPECT_EQ(m.get_computed_blocks(*b).num_computed_tokens, 0);
  EXPECT_EQ(m.take_prefix_cache_stats().queries, 9);  // only a's lookup counted

  KVCacheManager off = make_manager(20, /*caching=*/false);
  admit(off, *make_request("a", iota_tokens(9)));
  EXPECT_EQ(off.block_pool().num_cached_hashes(), 0u);
  EXPECT_EQ(off.get_computed_blocks(*make_request("b", iota_tokens(9))).num_computed_tokens, 0);
}

TEST(KVCacheManagerTest, SharedPrefixRefCountsAndFreeKeepsHashes) {
  KVCacheManager m = make_manager(12);
  auto a = make_request("a", iota_tokens(10));
  EXPECT_EQ(admit(m, *a), (std::vector<int32_t>{1, 2, 3}));
  std::vector<int32_t> pb = iota_tokens(8);
  pb.push_back(50);
  pb.push_back(51);
  pb.push_back(52);
  auto b = make_request("b", pb);
  EXPECT_EQ(admit(m, *b), (std::vector<int32_t>{1, 2, 4}));
  EXPECT_EQ(m.block_pool().block(1)->ref_cnt, 2);
  EXPECT_EQ(m.block_pool().block(2)->ref_cnt, 2);
  EXPECT_EQ(m.block_pool().block(3)->ref_cnt, 1);
  EXPECT_EQ(m.num_free_blocks(), 7);

  m.free(*a);
  EXPECT_EQ(m.block_pool().block(1)->ref_cnt, 1);
  EXPECT_EQ(m.num_free_blocks(), 8);  // only block 3 came back
  m.free(*b);
  EXPECT_EQ(m.num_free_blocks(), 11);
  EXPECT_DOUBLE_EQ(m.usage(), 0.0);
  // Hashes survive the free: a new request still hits blocks 1 and 2.
  auto c = make_request("c", iota_tokens(10));
  ComputedBlocks hit = m.get_computed_blocks(*c);
  EXPECT_EQ(ids_of(hit.blocks), (std::vector<int32_t>{1, 2}));
  // Touching hit blocks pulls them out of the free queue.
  ASSERT_TRUE(m.allocate_slots(*c, 2, hit.num_computed_tokens, hit.blocks).has_value());
  EXPECT_EQ(m.block_pool().block(1)->ref_cnt, 1);
  for (int32_t id : free_ids(m.block_pool())) {
    EXPECT_NE(id, 1);
    EXPECT_NE(id, 2);
  }
}

TEST(KVCacheManagerTest, ReverseFreeEvictsChainTailsFirst) {
  KVCacheManager m = make_manager(5);           // 4 usable blocks
  auto a = make_request("a", iota_tokens(12));  // 3 full blocks
  EXPECT_EQ(admit(m, *a), (std::vector<int32_t>{1, 2, 3}));
  m.free(*a);
  // Free queue: 4 (never used), then a's blocks tail first.
  EXPECT_EQ(free_ids(m.block_pool()), (std::vector<int32_t>{4, 3, 2, 1}));
  // A 9-token unrelated prompt needs 3 blocks: takes 4, then evicts 3 and 2 (tails).
  auto b = make_request("b", iota_tokens(9, 100));
  EXPECT_EQ(admit(m, *b), (std::vector<int32_t>{4, 3, 2}));
  EXPECT_FALSE(m.block_pool().block(3)->block_hash.has_value() &&
               *m.block_pool().block(3)->block_hash == a->block_hashes[2]);
  // a's first block is still cached: a repeat of a's prompt hits exactly one block.
  auto c = make_request("c", iota_tokens(12));
  ComputedBlocks hit = m.get_computed_blocks(*c);
  EXPECT_EQ(ids_of(hit.blocks), (std::vector<int32_t>{1}));
}

TEST(KVCacheManagerTest, AllocationFailsWithoutSideEffects) {
  KVCacheManager m = make_manager(4);  // 3 usable
  auto a = make_request("a", iota_tokens(8));
  admit(m, *a);  // 2 blocks
  auto b = make_request("b", iota_tokens(8, 50));
  EXPECT_FALSE(m.allocate_slots(*b, 8).has_value());
  EXPECT_EQ(m.num_free_blocks(), 1);
  EXPECT_TRUE(m.get_block_ids("b").empty());
  // Decode growth: the 9th token of a needs a third block.
  a->append_output_token(7);
  auto grown = m.allocate_slots(*a, 1);
  ASSERT_TRUE(grown.has_value());
  EXPECT_EQ(grown->size(), 1u);
  EXPECT_EQ(m.get_block_ids("a").size(), 3u);
  EXPECT_DOUBLE_EQ(m.usage(), 1.0);
}

TEST(KVCacheManagerTest, EventsReportStoredRemovedAndCleared) {
  KVCacheConfig c;
  c.num_blocks = 4;
  c.block_size = kBlockSize;
  c.max_model_len = 100;
  KVEventBuffer events;
  KVCacheManager m(c, BlockHasher(HashAlgo::kSha256, BlockHash(std::string(32, 'n'))), &events);
  auto a = make_request("a", iota_tokens(9));
  admit(m, *a);
  auto ev = events.take_events();
  ASSERT_EQ(ev.size(), 1u);
  const auto& stored = std::get<BlockStored>(ev[0]);
  EXPECT_EQ(stored.block_hashes, (std::vector<uint64_t>{a->block_hashes[0].to_u64(),
                                                        a->block_hashes[1].to_u64()}));
  EXPECT_FALSE(stored.parent_block_hash.has_value());
  EXPECT_EQ(stored.token_ids, iota_tokens(8));
  EXPECT_EQ(stored.block_size, kBlockSize);

  // Decoding fills block 3 (tokens 8..11): stored with parent = a's second block.
  for (int t = 0; t < 3; ++t) {
    a->append_output_token(200 + t);
    ASSERT_TRUE(m.allocate_slots(*a, 1).has_value());
    a->num_computed_tokens++;
  }
  ev = events.take_events();
  ASSERT_EQ(ev.size(), 1u);
  const auto& stored2 = std::get<BlockStored>(ev[0]);
  EXPECT_EQ(stored2.parent_block_hash, a->block_hashes[1].to_u64());
  EXPECT_EQ(stored2.token_ids, (std::vector<int32_t>{8, 200, 201, 202}));

  m.free(*a);
  auto b = make_request("b", iota_tokens(5, 70));
  admit(m, *b);  // 2 blocks: evicts the cached tails (blocks 3 then 2)
  ev = events.take_events();
  ASSERT_GE(ev.size(), 1u);
  const auto& removed = std::get<BlockRemoved>(ev[0]);
  EXPECT_EQ(removed.block_hashes, (std::vector<uint64_t>{a->block_hashes[2].to_u64(),
                                                         a->block_hashes[1].to_u64()}));
  m.free(*b);
  EXPECT_TRUE(m.reset_prefix_cache());
  ev = events.take_events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<AllBlocksCleared>(ev[0]));
  EXPECT_EQ(m.get_computed_blocks(*make_request("z", iota_tokens(9))).num_computed_tokens, 0);
}

}  // namespace
}  // namespace moeserve::engine
