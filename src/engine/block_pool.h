// BlockPool: every KV-cache block of one engine, their reference counts, the free queue
// (LRU eviction order) and the prefix cache (block hash -> cached blocks), following
// vLLM V1's vllm/v1/core/block_pool.py. The prefix cache holds at most one hash per block, so
// its size is bounded by the number of blocks fixed at construction.
//
// Invariants:
//  - block 0 is the null block: taken out of the free queue at construction, never freed;
//  - a block is in the free queue iff ref_cnt == 0 (and it is not the null block);
//  - a free block may still carry its hash and be found by get_cached_block() until it is
//    popped for allocation, at which point its hash is evicted (BlockRemoved event);
//  - identical blocks are not de-duplicated: one hash may map to several blocks.
//
// Thread-safety: none; owned by the KVCacheManager on the engine-loop thread.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "engine/block_hash.h"
#include "engine/free_block_queue.h"
#include "engine/kv_events.h"

namespace moeserve::engine {

class BlockPool {
 public:
  // `num_blocks` includes the null block (must be >= 2). `sink` may be null (no events).
  BlockPool(int32_t num_blocks, bool enable_caching, KVEventSink* sink = nullptr);
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  int32_t num_blocks() const { return static_cast<int32_t>(blocks_.size()); }
  bool enable_caching() const { return enable_caching_; }
  KVCacheBlock* null_block() { return null_block_; }
  KVCacheBlock* block(int32_t block_id) { return &blocks_[block_id]; }

  // Any cached block with this hash, or null.
  KVCacheBlock* get_cached_block(const BlockHash& hash) const;

  // Pops `n` blocks from the front of the free queue (evicting their cached hashes) and
  // takes one reference on each. Returns nullopt if fewer than `n` blocks are free.
  std::optional<std::vector<KVCacheBlock*>> get_new_blocks(int32_t n);

  // Takes a reference on each block (prefix-cache hit); blocks at ref 0 leave the free
  // queue.
  void touch(std::span<KVCacheBlock* const> blocks);

  // Drops one reference on each block, in the given order; blocks reaching 0 are appended
  // to the free queue keeping their hashes. Callers pass a request's blocks in reverse so
  // that chain tails are evicted before their prefixes.
  void free_blocks(std::span<KVCacheBlock* const> ordered_blocks);

  // Marks blocks [num_cached_blocks, num_full_blocks) of `blocks` as cached under
  // `block_hashes[i]` (the request's chained hashes) and emits one BlockStored.
  // `all_token_ids` are the request's tokens (for the event payload).
  void cache_full_blocks(std::span<KVCacheBlock* const> blocks,
                         std::span<const BlockHash> block_hashes,
                         std::span<const int32_t> all_token_ids, int32_t num_cached_blocks,
                         int32_t num_full_blocks, int32_t block_size);

  // Drops every cached hash. Fails (returns false) while any block is in use.
  bool reset_prefix_cache();

  int32_t get_num_free_blocks() const { return free_queue_.num_free_blocks(); }
  // 1 - free / (num_blocks - 1): the null block is excluded; evictable cached blocks
  // count as free.
  double get_usage() const;

  const FreeKVCacheBlockQueue& free_queue() const { return free_queue_; }
  size_t num_cached_hashes() const { return cached_.size(); }

 private:
  // Removes `block`'s hash from the prefix cache if it has one; true if it did.
  bool maybe_evict_cached_block(KVCacheBlock* block);
  void publish(KVCacheEvent event);

  bool enable_caching_;
  KVEventSink* sink_;
  std::vector<KVCacheBlock> blocks_;
  FreeKVCacheBlockQueue free_queue_;
  KVCacheBlock* null_block_ = nullptr;
  // The prefix cache: hash -> (block id -> block); several blocks may share a hash. Bounded by
  // the pool: a block carries at most one hash, so at most num_blocks() entries in all
  // (exported as moeserve:prefix_cache_entries).
  absl::flat_hash_map<BlockHash, absl::flat_hash_map<int32_t, KVCacheBlock*>> cached_;
};

}  // namespace moeserve::engine
