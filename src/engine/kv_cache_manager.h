// KVCacheManager: per-request block tables over a BlockPool, with prefix caching
// (vLLM V1 vllm/v1/core/kv_cache_manager.py, one full-attention KV-cache group).
//
// Contract of a request's life: get_computed_blocks() (prefix hits) -> allocate_slots()
// each step it is scheduled -> free() when it finishes or is preempted. Blocks become
// cached as soon as the tokens that fill them are scheduled.
//
// Thread-safety: none; owned by the Scheduler on the engine-loop thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "core/status.h"
#include "engine/block_hash.h"
#include "engine/block_pool.h"
#include "engine/kv_events.h"
#include "engine/request.h"

namespace moeserve::engine {

struct KVCacheConfig {
  int32_t num_blocks = 0;  // including the null block
  int32_t block_size = 16;
  bool enable_prefix_caching = true;
  HashAlgo hash_algo = HashAlgo::kSha256;
  int32_t max_model_len = 0;  // slots are never allocated past this many tokens

  absl::Status validate() const;
};

// Prefix-cache counters in tokens (vllm:prefix_cache_queries / _hits).
struct PrefixCacheStats {
  int64_t requests = 0;
  int64_t queries = 0;
  int64_t hits = 0;
};

struct ComputedBlocks {
  std::vector<KVCacheBlock*> blocks;
  int32_t num_computed_tokens = 0;
};

class KVCacheManager {
 public:
  // `hasher` fixes the hash algorithm and NONE_HASH; `sink` may be null.
  KVCacheManager(const KVCacheConfig& config, BlockHasher hasher, KVEventSink* sink = nullptr);
  static absl::StatusOr<std::unique_ptr<KVCacheManager>> create(const KVCacheConfig& config,
                                                                KVEventSink* sink = nullptr);

  // Longest prefix-cache hit for a request that holds no blocks yet. Empty when caching
  // is off or prompt logprobs are requested; at most num_tokens - 1 tokens (the last token
  // is always recomputed for its logits). Records prefix-cache stats.
  ComputedBlocks get_computed_blocks(Request& request);

  // Makes room for `num_new_tokens` more tokens after request.num_computed_tokens plus
  // `num_new_computed_tokens` prefix-hit tokens, whose blocks are `new_computed_blocks`.
  // Returns the newly allocated blocks, or nullopt (changing nothing) if the pool is short.
  std::optional<std::vector<KVCacheBlock*>> allocate_slots(
      Request& request, int32_t num_new_tokens, int32_t num_new_computed_tokens = 0,
      const std::vector<KVCacheBlock*>& new_computed_blocks = {});

  // Releases the request's blocks, tail first.
  void free(const Request& request);

  std::vector<int32_t> get_block_ids(const std::string& request_id) const;
  double usage() const { return pool_.get_usage(); }
  int32_t num_free_blocks() const { return pool_.get_num_free_blocks(); }
  // Returns and resets the stats gathered since the last call.
  PrefixCacheStats take_prefix_cache_stats();
  bool reset_prefix_cache() { return pool_.reset_prefix_cache(); }

  // Appends the chained hashes of request's newly full blocks to request.block_hashes.
  void update_block_hashes(Request& request) const;

  const KVCacheConfig& config() const { return config_; }
  const BlockHasher& hasher() const { return hasher_; }
  BlockPool& block_pool() { return pool_; }

 private:
  void cache_blocks(Request& request, int32_t num_tokens);

  KVCacheConfig config_;
  BlockHasher hasher_;
  BlockPool pool_;
  absl::flat_hash_map<std::string, std::vector<KVCacheBlock*>> req_to_blocks_;
  absl::flat_hash_map<std::string, int32_t> num_cached_blocks_;
  PrefixCacheStats stats_;
};

}  // namespace moeserve::engine
